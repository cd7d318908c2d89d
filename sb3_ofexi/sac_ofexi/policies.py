"""SAC policy on OFEXiNet features: a squashed-Gaussian gated actor (gSDE included) on the shared
OFEXi policy (:mod:`sb3_ofexi.common.policies`; SPEC sections 2-3, 6-7)."""

from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import SquashedDiagGaussianDistribution, StateDependentNoiseDistribution
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from sb3_ofexi.common.complexity import count_params, mlp_param_count
from sb3_ofexi.common.policies import OFEXiPolicy, XiCritic, XiMlp, l2_weights  # noqa: F401 (re-exported)
from sb3_ofexi.common.surgery import Surgery

# Same clamp as SB3's SAC actor
LOG_STD_MAX = 2
LOG_STD_MIN = -20


class XiActor(nn.Module):
    """Squashed Gaussian actor on z_o; one XiMlp whose output holds [mean, log_std].

    With ``use_sde`` (gSDE, Raffin et al. 2022, as SB3's SAC actor): the XiMlp outputs the mean
    (clipped to ``[-clip_mean, clip_mean]``), ``log_std`` is a parameter of shape
    ``(latent, action_dim)`` (``full_std``) or ``(latent, 1)`` over the last hidden layer
    ``h_L``, and the exploration noise is ``h_L @ W`` with ``W`` resampled by
    :meth:`reset_noise`. ``log_std`` and ``W`` consume ``h_L``, so they join the surgery:
    :meth:`prune_` drops their rows with the last layer's units, and noise is resampled.
    """

    def __init__(
        self,
        z_o_dim: int,
        action_dim: int,
        net_arch: list[int],
        activation_fn: type[nn.Module],
        use_xi: bool,
        use_sde: bool = False,
        log_std_init: float = -3.0,
        full_std: bool = True,
        use_expln: bool = False,
        clip_mean: float = 2.0,
    ) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.use_sde = use_sde
        self.net = XiMlp(z_o_dim, net_arch, action_dim if use_sde else 2 * action_dim, activation_fn, use_xi)
        self.action_dist: SquashedDiagGaussianDistribution | StateDependentNoiseDistribution
        if use_sde:
            self.clip_mean = clip_mean
            self.action_dist = StateDependentNoiseDistribution(
                action_dim, full_std=full_std, use_expln=use_expln, learn_features=False, squash_output=True
            )
            latent = self.net.out.in_features
            self.action_dist.latent_sde_dim = latent
            self.log_std = nn.Parameter(th.ones(latent, action_dim if full_std else 1) * log_std_init)
            self.reset_noise()
        else:
            self.action_dist = SquashedDiagGaussianDistribution(action_dim)
        self.optimizer: th.optim.Optimizer

    def get_action_dist_params(self, z_o: th.Tensor) -> tuple[th.Tensor, th.Tensor, dict[str, th.Tensor]]:
        if self.use_sde:
            latent, mean = self.net.forward_latent(z_o)
            if self.clip_mean > 0:
                mean = th.clamp(mean, -self.clip_mean, self.clip_mean)
            return mean, self.log_std, {"latent_sde": latent}
        mean, log_std = self.net(z_o).chunk(2, dim=-1)
        return mean, th.clamp(log_std, LOG_STD_MIN, LOG_STD_MAX), {}

    def forward(self, z_o: th.Tensor, deterministic: bool = False) -> th.Tensor:
        mean, log_std, kwargs = self.get_action_dist_params(z_o)
        return self.action_dist.actions_from_params(mean, log_std, deterministic=deterministic, **kwargs)

    def action_log_prob(self, z_o: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        mean, log_std, kwargs = self.get_action_dist_params(z_o)
        return self.action_dist.log_prob_from_params(mean, log_std, **kwargs)

    def get_std(self) -> th.Tensor:
        """gSDE's standard deviation over the last hidden layer, as SB3's ``Actor.get_std``."""
        if not self.use_sde:
            raise RuntimeError("get_std() is only available with gSDE: SAC_OFEXi(..., use_sde=True)")
        return self.action_dist.get_std(self.log_std)  # type: ignore[union-attr]

    def _predict(self, z_o: th.Tensor, deterministic: bool = False) -> th.Tensor:
        return self(z_o, deterministic)

    def reset_noise(self, batch_size: int = 1) -> None:
        """Resample gSDE's exploration matrices (a no-op without gSDE)."""
        if self.use_sde:
            self.action_dist.sample_weights(self.log_std, batch_size=batch_size)  # type: ignore[union-attr]

    def prune_(self, keep_in: th.Tensor, keep_units: list[th.Tensor], surgery: Surgery) -> th.Tensor:
        """The one surgery protocol: the XiMlp, then gSDE's ``log_std`` rows, which read ``h_L``."""
        keep_latent = keep_units[-1] if keep_units else keep_in
        if self.use_sde and not bool(keep_latent.all()):
            # the exploration matrices were sampled from log_std with autograd on: their graph
            # would keep log_std's pre-surgery shape alive (see Surgery); drop them first
            dist = self.action_dist
            dist.weights_dist = dist.exploration_mat = dist.exploration_matrices = None  # type: ignore[union-attr]
        keep_out = self.net.prune_(keep_in, keep_units, surgery)
        if self.use_sde:
            surgery.select_(self.log_std, 0, keep_latent)
            self.action_dist.latent_sde_dim = self.net.out.in_features  # type: ignore[union-attr]
            if not bool(keep_latent.all()):
                self.reset_noise()  # noise over the remaining units
        return keep_out


class SACOFEXiPolicy(OFEXiPolicy):
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

    def _make_actor(self, z_o_dim: int, action_dim: int, pi_arch: list[int]) -> XiActor:
        return XiActor(z_o_dim, action_dim, pi_arch, self.activation_fn, self.use_xi, self.use_sde, **self.sde_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "use_sde": self.use_sde, **self.sde_kwargs}

    def reset_noise(self, batch_size: int = 1) -> None:
        """gSDE: resample the actor's exploration matrices (SB3's ``policy.reset_noise``)."""
        self.actor.reset_noise(batch_size=batch_size)

    def _actor_extra_params(self, widths: list[Any], d_z_o: Any) -> Any:
        """gSDE's log_std: one row per unit of the actor's last hidden layer."""
        if not self.actor.use_sde:
            return 0
        return (widths[-1] if widths else d_z_o) * self.actor.log_std.shape[1]

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
