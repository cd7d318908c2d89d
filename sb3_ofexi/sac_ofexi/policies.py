"""SAC policy on OFEXiNet features: the squashed-Gaussian gated actor (:class:`~sb3_ofexi.common.actors.XiActor`,
gSDE included) on the shared OFEXi policy (:mod:`sb3_ofexi.common.policies`; SPEC sections 2-3, 6-7)."""

from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from sb3_ofexi.common.actors import LOG_STD_MAX, LOG_STD_MIN, XiActor, XiActorPolicyMixin  # noqa: F401 (re-exported)
from sb3_ofexi.common.complexity import count_params, mlp_param_count
from sb3_ofexi.common.policies import OFEXiPolicy, XiCritic, XiMlp, l2_weights  # noqa: F401 (re-exported)


class SACOFEXiPolicy(XiActorPolicyMixin, OFEXiPolicy):
    """SAC policy whose actor reads z_o = phi_o(o) and whose critics read z_oa = phi_oa([z_o, a]):
    :class:`~sb3_ofexi.common.policies.OFEXiPolicy` with a squashed-Gaussian :class:`XiActor`.

    :param use_sde: gSDE (as SB3's SAC), with ``log_std_init``, ``full_std``, ``use_expln``,
        ``clip_mean``; the other parameters are :class:`OFEXiPolicy`'s
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
        self.use_sde = use_sde
        self.sde_kwargs: dict[str, Any] = dict(
            log_std_init=log_std_init, full_std=full_std, use_expln=use_expln, clip_mean=clip_mean
        )
        self._build(lr_schedule)

    def paper_param_counts(self) -> dict[str, int]:
        """The paper's Table 4 convention: deploy as :meth:`param_counts`; train without f_pred
        and with the V network of the paper's SAC (on z_o), which SB3's SAC does not have.

        V is counted with the first critic's hidden widths (its own, pruned by nu_v in the
        paper, do not exist here); docs/COMPLEXITY.md checks this against Table 4.
        """
        counts = self.param_counts()
        v_net = mlp_param_count(self.ofe.z_o_dim, self.critic.q_networks[0].units, 1)
        return {"deploy": counts["deploy"], "train": counts["train"] - count_params(self.ofe.f_pred) + v_net}


MlpPolicy = SACOFEXiPolicy
#: dict observations (Box / MultiBinary entries): the same policy, phi_o reads the flattened dict
MultiInputPolicy = SACOFEXiPolicy
