"""The methods and algorithms the harness runs: the bottom of the harness, imported by every part
of it and importing none of them (no import cycle)."""

from __future__ import annotations

from sb3_contrib import TQC, CrossQ
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_ofexi.common.algorithm import OFEXiAlgorithm
from sb3_ofexi.eaudesac import EauDeSAC
from sb3_ofexi.polyprune import PolyPruneSAC
from sb3_ofexi.sac_ofexi import SAC_OFEXi
from sb3_ofexi.td3_ofexi import TD3_OFEXi
from sb3_ofexi.tqc_ofexi import TQC_OFEXi

#: method -> (YAML file in hyperparams/, algorithm class)
METHODS: dict[str, tuple[str, type[BaseAlgorithm]]] = {
    "sac": ("sac", SAC),
    "sac-big": ("sac_big", SAC),
    "ofe": ("sac_ofexi_ofe", SAC_OFEXi),
    "ofe-big": ("sac_ofexi_ofe_big", SAC_OFEXi),
    "prune-a": ("sac_ofexi_prune_a", SAC_OFEXi),
    "prune-b": ("sac_ofexi_prune_b", SAC_OFEXi),
    "prune-c": ("sac_ofexi_prune_c", SAC_OFEXi),
    # prune-b with a deploy budget from its YAML entry (the size prune-b reached in the paper's Table 4)
    "budget": ("sac_ofexi_budget", SAC_OFEXi),
    # the peer methods: per-weight masks (parameter counts fall, matrices keep their shapes)
    "polyprune": ("polyprune_sac", PolyPruneSAC),
    "eaudesac": ("eaudesac", EauDeSAC),
    # beyond SAC: the stock algorithms with rl-zoo3's settings, and OFEXi on TD3 and TQC
    "td3": ("td3", TD3),
    "tqc": ("tqc", TQC),
    "crossq": ("crossq", CrossQ),
    "td3-ofe": ("td3_ofexi_ofe", TD3_OFEXi),
    "td3-prune-b": ("td3_ofexi_prune_b", TD3_OFEXi),
    "tqc-ofe": ("tqc_ofexi_ofe", TQC_OFEXi),
    "tqc-prune-b": ("tqc_ofexi_prune_b", TQC_OFEXi),
}
#: rl-zoo3's names of the algorithms (``--algo``)
ALGOS: dict[str, type[BaseAlgorithm]] = {
    "sac_ofexi": SAC_OFEXi,
    "td3_ofexi": TD3_OFEXi,
    "tqc_ofexi": TQC_OFEXi,
    "polyprune_sac": PolyPruneSAC,
    "eaudesac": EauDeSAC,
    "sac": SAC,
    "td3": TD3,
    "tqc": TQC,
    "crossq": CrossQ,
}
#: the OFEXi algorithms' names, as a run's summary records them (``algo``)
OFEXI_NAMES = tuple(algo.ofexi_name for algo in (SAC_OFEXi, TD3_OFEXi, TQC_OFEXi))
#: rl-zoo3's own algorithms (``--algo``), which registering ours must leave as they are
ZOO_OWN = ("sac", "td3", "tqc", "crossq")


def is_ofexi(algo: type[BaseAlgorithm] | BaseAlgorithm) -> bool:
    """Whether an algorithm (class or model) is one of the OFEXi algorithms (SAC/TD3/TQC_OFEXi)."""
    return issubclass(algo if isinstance(algo, type) else type(algo), OFEXiAlgorithm)


def parse_methods(text: str) -> list[str]:
    methods = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"Unknown method(s) {unknown or text!r}: accepted: {', '.join(METHODS)}")
    return methods
