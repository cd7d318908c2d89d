"""rl-zoo3's ``-optimize`` for ``--algo sac_ofexi | td3_ofexi | tqc_ofexi``: an Optuna sampler over
what OFEXiNet adds.

The RL algorithm's own hyperparameters are sampled as rl-zoo3 samples SAC's, TD3's or TQC's (gamma,
batch size, learning rate, train frequency, tau, the RL networks' sizes...), plus OFEXiNet's: the regulariser weights
nu_OFE, nu_pi, nu_q (Table 2's, each over two decades either side of the presets' values), rho
(eq. 27), the thetas' learning rate and the OFE block width. The YAML entry's ``preset`` stays:
sampled values override it, keyword by keyword.
"""

from __future__ import annotations

import functools
from typing import Any

#: log-uniform ranges, around Table 2's values (prune-a .. prune-c)
NU_RANGES = {"nu_ofe": (1e-9, 1e-5), "nu_actor": (1e-7, 1e-3), "nu_critic": (1e-6, 1e-1)}
OFE_UNITS = (16, 32, 64, 128)


#: rl-zoo3's sampler of the RL algorithm under each OFEXi algorithm
BASE_SAMPLERS = {"sac_ofexi": "sac", "td3_ofexi": "td3", "tqc_ofexi": "tqc"}


def sample_ofexi_params(
    trial: Any, n_actions: int, n_envs: int, additional_args: dict, base: str = "sac"
) -> dict[str, Any]:
    """rl-zoo3 sampler (``HYPERPARAMS_SAMPLER["sac_ofexi"]``...): rl-zoo3's ``base`` sampler plus OFEXiNet's."""
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_SAMPLER

    hyperparams = HYPERPARAMS_SAMPLER[base](trial, n_actions, n_envs, additional_args)
    for name, (low, high) in NU_RANGES.items():
        hyperparams[name] = trial.suggest_float(name, low, high, log=True)
    hyperparams["rho"] = trial.suggest_float("rho", 0.1, 1.0)
    hyperparams["theta_lr"] = trial.suggest_float("theta_lr", 1e-4, 1e-1, log=True)
    hyperparams["ofe_units"] = trial.suggest_categorical("ofe_units", list(OFE_UNITS))
    return hyperparams


def convert_ofexi_params(sampled: dict[str, Any]) -> dict[str, Any]:
    """rl-zoo3 converter (``HYPERPARAMS_CONVERTER["sac_ofexi"]``): a trial's raw values -> kwargs."""
    from rl_zoo3.hyperparams_opt import convert_offpolicy_params

    ours = {k: sampled[k] for k in (*NU_RANGES, "rho", "theta_lr", "ofe_units") if k in sampled}
    rest = {k: v for k, v in sampled.items() if k not in ours}
    return {**convert_offpolicy_params(rest), **ours}


def register_sampler() -> None:
    """Make ``-optimize`` work with ``--algo sac_ofexi | td3_ofexi | tqc_ofexi | polyprune_sac | eaudesac``."""
    from rl_zoo3 import hyperparams_opt

    for algo, base in BASE_SAMPLERS.items():
        hyperparams_opt.HYPERPARAMS_SAMPLER[algo] = functools.partial(sample_ofexi_params, base=base)
        hyperparams_opt.HYPERPARAMS_CONVERTER[algo] = convert_ofexi_params
    # the peers: SAC's own sampler (their pruning settings keep the YAML's values)
    for algo in ("polyprune_sac", "eaudesac"):
        hyperparams_opt.HYPERPARAMS_SAMPLER[algo] = hyperparams_opt.sample_sac_params
        hyperparams_opt.HYPERPARAMS_CONVERTER[algo] = hyperparams_opt.convert_offpolicy_params
