"""The methods and algorithms the harness runs: the bottom of the harness, imported by every part
of it and importing none of them (no import cycle)."""

from __future__ import annotations

from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_ofexi.eaudesac import EauDeSAC
from sb3_ofexi.polyprune import PolyPruneSAC
from sb3_ofexi.sac_ofexi import SAC_OFEXi

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
}
#: rl-zoo3's names of the algorithms (``--algo``)
ALGOS: dict[str, type[BaseAlgorithm]] = {
    "sac_ofexi": SAC_OFEXi,
    "polyprune_sac": PolyPruneSAC,
    "eaudesac": EauDeSAC,
    "sac": SAC,
}


def parse_methods(text: str) -> list[str]:
    methods = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"Unknown method(s) {unknown or text!r}: accepted: {', '.join(METHODS)}")
    return methods
