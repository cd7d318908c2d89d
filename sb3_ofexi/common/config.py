"""OFEXi's settings as one frozen record: built once from a preset and keyword overrides,
validated there, saved with the model (SPEC section 8).

Every OFEXi algorithm (SAC_OFEXi, TD3_OFEXi, TQC_OFEXi) reads its
settings from an :class:`OFEXiConfig`; nothing else parses them. Files saved before the record
existed are read by :mod:`sb3_ofexi.common.compat`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from sb3_ofexi.common.budget import check_budget
from sb3_ofexi.common.complexity import REGULARISERS
from sb3_ofexi.common.ofenet import PRED_LOSSES
from sb3_ofexi.common.schedule import env_steps, parse_schedule_point
from sb3_ofexi.common.step import check_compile_step

#: The reward scale of the OFENet code's SAC on the paper's four tasks (its get_default_scale_reward).
OFENET_REWARD_SCALE = 5.0
#: Factors on nu_actor / nu_critic that weigh Table 2's values against SB3's SAC losses as the paper
#: weighed them against its own (``nu_rl_reference``). Rewards scaled by s scale Q and the TD error
#: by s: each critic's MSE (the OFENet code, no 1/2) is 2 s^2 times SB3's per-critic share (1/2 MSE),
#: and the actor loss E[log pi - Q] (alpha 1) is s times SB3's E[alpha log pi - Q] (alpha ~ 1/s).
#: Adam moves weights and thetas the same under a loss scaled by k as under nu / k.
NU_RL_FACTORS: dict[str, dict[str, float]] = {
    "ofenet": {"actor": 1.0 / OFENET_REWARD_SCALE, "critic": 1.0 / (2.0 * OFENET_REWARD_SCALE**2)},
    "sb3": {"actor": 1.0, "critic": 1.0},
}
#: The same weighing for each family of RL losses an OFEXi algorithm trains with (``rl_losses``):
#:
#: * ``"sac"``: :data:`NU_RL_FACTORS`.
#: * ``"td3"``: Table 2's nu was chosen for the paper's SAC only, so ``"ofenet"`` carries the OFENet
#:   code's SAC conventions over (rewards x s): the actor loss ``-E[Q_1]`` grows by s (1/s), and
#:   each critic's MSE, summed without 1/2 by SB3's TD3 as by the OFENet code, by s^2 (1/s^2). (The
#:   OFENet code's own TD3, without XiNets, trains on raw rewards: nu as given there pruned Reacher-v5's
#:   TD3 actor and critics to 0 units; docs/CALIBRATION.md, "Beyond SAC".)
#: * ``"tqc"``: the OFENet code has no TQC; ``"ofenet"`` carries its SAC conventions over. The actor
#:   loss is SAC's form (factor 1/s as for SAC); sb3-contrib's critic loss is the quantile Huber
#:   loss averaged over both critics, where the OFENet code sums its critics' losses (x 2 at TQC's
#:   default 2 critics) and a Huber loss in its linear regime (TD errors above 1) grows by s, not
#:   s^2, with rewards scaled by s: factor 1 / (2 s). docs/CALIBRATION.md ("Beyond SAC").
NU_RL_FACTORS_BY_LOSSES: dict[str, dict[str, dict[str, float]]] = {
    "sac": NU_RL_FACTORS,
    "td3": {
        "ofenet": {"actor": 1.0 / OFENET_REWARD_SCALE, "critic": 1.0 / OFENET_REWARD_SCALE**2},
        "sb3": {"actor": 1.0, "critic": 1.0},
    },
    "tqc": {
        "ofenet": {"actor": 1.0 / OFENET_REWARD_SCALE, "critic": 1.0 / (2.0 * OFENET_REWARD_SCALE)},
        "sb3": {"actor": 1.0, "critic": 1.0},
    },
}


@dataclass(frozen=True)
class OFEXiConfig:
    """What an OFEXi model was asked to do; the parameters of :class:`~sb3_ofexi.SAC_OFEXi`
    document each field. ``ofe_units`` and ``net_arch`` are the *initial* widths (the pruned
    ones are in the model's ``policy_kwargs``)."""

    preset: str | None
    ofe_units: dict[str, list[int]]
    net_arch: Any
    use_xi: bool
    nu_ofe: float
    nu_actor: float
    nu_critic: float
    lambda_ofe: float
    lambda_rl: float
    rho: float
    regulariser: str
    pred_loss: str
    nu_rl_reference: str
    theta_tol: float = 0.1
    theta_lr: float | None = None
    xi_start: int | float = 0.2
    xi_round: int | float = 0.8
    prune_freq: int = 1000
    theta_diagnostics_freq: int = 5_000
    ofe_pretrain_steps: int | None = None
    ofe_target_dim: int | None = None
    compile_step: bool | str = "auto"
    deploy_budget: int | float | None = None
    train_budget: int | float | None = None
    budget_rate: float = 10.0
    #: the RL losses nu_actor / nu_critic meet (:data:`NU_RL_FACTORS_BY_LOSSES`): set by the algorithm
    rl_losses: str = "sac"

    @classmethod
    def build(cls, preset: str | None, table: dict[str, Any], ofe_layers: int = 6, **given: Any) -> OFEXiConfig:
        """The preset's values (``table``: a row of the algorithm's presets), with every
        ``given`` value in their place (``None`` for a preset's key: the preset's value);
        ``ofe_units`` as an int becomes ``ofe_layers`` blocks of that width in phi_o and phi_oa."""
        if not isinstance(ofe_layers, int) or isinstance(ofe_layers, bool) or ofe_layers < 0:
            raise ValueError(f"ofe_layers={ofe_layers!r} is invalid: accepted: an int >= 0")
        values = {**table, **{k: v for k, v in given.items() if v is not None or k not in table}}
        units = values["ofe_units"]
        if isinstance(units, int) and not isinstance(units, bool) and units >= 0:
            values["ofe_units"] = {"phi_o": [units] * ofe_layers, "phi_oa": [units] * ofe_layers}
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(preset=preset, **{k: v for k, v in values.items() if k in fields and k != "preset"})

    def __post_init__(self) -> None:
        """A ValueError naming the value and what is accepted; schedule points and budgets normalised."""
        for key, accepted in (
            ("regulariser", REGULARISERS),
            ("pred_loss", PRED_LOSSES),
            ("nu_rl_reference", tuple(NU_RL_FACTORS)),
            ("rl_losses", tuple(NU_RL_FACTORS_BY_LOSSES)),
        ):
            if getattr(self, key) not in accepted:
                raise ValueError(f"{key}={getattr(self, key)!r} is invalid: accepted: {', '.join(map(repr, accepted))}")
        for key in ("nu_ofe", "nu_actor", "nu_critic", "lambda_ofe", "lambda_rl"):
            value = getattr(self, key)
            if not _number(value) or not np.isfinite(value) or value < 0:
                raise ValueError(f"{key}={value!r} is invalid: accepted: a finite number >= 0")
            object.__setattr__(self, key, float(value))
        if not _number(self.rho) or not 0.0 <= self.rho <= 1.0:
            raise ValueError(f"rho={self.rho!r} is invalid: accepted: a number in [0, 1]")
        if not _number(self.theta_tol) or not 0.0 < self.theta_tol < 1.0:
            raise ValueError(f"theta_tol={self.theta_tol!r} is invalid: accepted: a number in (0, 1)")
        if self.theta_lr is not None and (not _number(self.theta_lr) or not self.theta_lr > 0):
            raise ValueError(f"theta_lr={self.theta_lr!r} is invalid: accepted: a number > 0, or None")
        start = parse_schedule_point(self.xi_start, "xi_start")
        round_at = parse_schedule_point(self.xi_round, "xi_round")
        if type(start) is type(round_at) and start >= round_at:  # mixed int/float: checked in learn()
            raise ValueError(
                f"xi_start={self.xi_start!r} must be smaller than xi_round={self.xi_round!r} "
                "(thetas learn between the two; an int is env steps, a float in [0, 1] a fraction of the budget)"
            )
        units = self.ofe_units
        if (
            not isinstance(units, dict)
            or set(units) != {"phi_o", "phi_oa"}
            or not all(isinstance(n, int) and n >= 0 for v in units.values() for n in v)
        ):
            raise ValueError(
                f"ofe_units={units!r} is invalid: accepted: an int >= 0 or dict(phi_o=[int>=0, ...], phi_oa=[...])"
            )
        for key, low, what in (
            ("prune_freq", 0, "an int >= 0 (0 disables pruning)"),
            ("theta_diagnostics_freq", 0, "an int >= 0 (0: off)"),
        ):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{key}={value!r} is invalid: accepted: {what}")
        pretrain = self.ofe_pretrain_steps
        if pretrain is not None and (isinstance(pretrain, bool) or not isinstance(pretrain, int) or pretrain < 0):
            raise ValueError(f"ofe_pretrain_steps={pretrain!r} is invalid: accepted: an int >= 0, or None")
        check_compile_step(self.compile_step)
        budgets = {k: check_budget(getattr(self, k), k) for k in ("deploy_budget", "train_budget")}
        if not _number(self.budget_rate) or not self.budget_rate > 0:
            raise ValueError(f"budget_rate={self.budget_rate!r} is invalid: accepted: a number > 0")
        if any(v is not None for v in budgets.values()) and not self.use_xi:
            raise ValueError(
                f"deploy_budget={self.deploy_budget!r}, train_budget={self.train_budget!r} need the gates: "
                "accepted with use_xi=True (a prune-* preset), not with use_xi=False"
            )
        for key, value in {"xi_start": start, "xi_round": round_at, "use_xi": bool(self.use_xi), **budgets}.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "budget_rate", float(self.budget_rate))

    def replace(self, **changes: Any) -> OFEXiConfig:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def has_budget(self) -> bool:
        return self.deploy_budget is not None or self.train_budget is not None

    @property
    def never_rounds(self) -> bool:
        """``xi_round=1.0``: the thetas are never rounded."""
        return isinstance(self.xi_round, float) and self.xi_round >= 1.0

    def schedule_steps(self, total_timesteps: int) -> tuple[float, float]:
        """``(xi_start, xi_round)`` in env steps for a learn() budget; ``inf`` where never rounded."""
        round_at = float("inf") if self.never_rounds else env_steps(self.xi_round, total_timesteps)
        return env_steps(self.xi_start, total_timesteps), round_at

    def rl_nu(self, network: str) -> float:
        """``nu_actor`` or ``nu_critic`` weighed against SB3's losses (``nu_rl_reference``)."""
        return getattr(self, f"nu_{network}") * NU_RL_FACTORS_BY_LOSSES[self.rl_losses][self.nu_rl_reference][network]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
