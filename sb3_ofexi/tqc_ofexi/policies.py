"""TQC policy on OFEXiNet features: the squashed-Gaussian gated actor (gSDE included) and gated
quantile critics, on the shared OFEXi policy (:mod:`sb3_ofexi.common.policies`; SPEC sections 2-3, 6-7)."""

from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from sb3_ofexi.common.actors import XiActor, XiActorPolicyMixin
from sb3_ofexi.common.policies import OFEXiPolicy, XiCritic


class TQCOFEXiPolicy(XiActorPolicyMixin, OFEXiPolicy):
    """TQC policy (Kuznetsov et al. 2020, as sb3-contrib's TQC) whose actor reads z_o = phi_o(o) and
    whose ``n_critics`` critics each give ``n_quantiles`` quantiles of the return from z_oa.

    :param n_quantiles: quantiles per critic (sb3-contrib's default 25)
    :param use_sde: gSDE, with ``log_std_init``, ``full_std``, ``use_expln``, ``clip_mean`` (as
        sb3-contrib's TQC); the other parameters are :class:`OFEXiPolicy`'s
    """

    actor: XiActor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, Any] | None = None,
        ofe_units: dict[str, list[int]] | None = None,
        use_xi: bool = True,
        ofe_target_dim: int | None = None,
        theta_lr: float | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        n_quantiles: int = 25,
        n_critics: int = 2,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        use_sde: bool = False,
        log_std_init: float = -3.0,
        full_std: bool = True,
        use_expln: bool = False,
        clip_mean: float = 2.0,
        ofexi_algorithm: str | None = None,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            net_arch,
            ofe_units,
            use_xi,
            ofe_target_dim,
            theta_lr,
            activation_fn,
            n_critics,
            normalize_images,
            optimizer_class,
            optimizer_kwargs,
            ofexi_algorithm,
        )
        if isinstance(n_quantiles, bool) or not isinstance(n_quantiles, int) or n_quantiles < 1:
            raise ValueError(f"n_quantiles={n_quantiles!r}: accepted: an int >= 1")
        self.n_quantiles = n_quantiles
        self.use_sde = use_sde
        self.sde_kwargs: dict[str, Any] = dict(
            log_std_init=log_std_init, full_std=full_std, use_expln=use_expln, clip_mean=clip_mean
        )
        self._build(lr_schedule)

    def _make_critic(self, z_oa_dim: int, critic_arch: list[list[int]]) -> XiCritic:
        return XiCritic(z_oa_dim, critic_arch, self.activation_fn, self.use_xi, out_features=self.n_quantiles)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "n_quantiles": self.n_quantiles}


MlpPolicy = TQCOFEXiPolicy
#: dict observations (Box / MultiBinary entries): the same policy, phi_o reads the flattened dict
MultiInputPolicy = TQCOFEXiPolicy
