"""Gated actors every OFEXi algorithm may use: :class:`XiActor`, the squashed-Gaussian actor of
SAC and TQC (gSDE included), on z_o = phi_o(o) (SPEC sections 2-3, 6), and what a policy with
one needs (:class:`XiActorPolicyMixin`)."""

from __future__ import annotations

from typing import Any

import torch as th
from stable_baselines3.common.distributions import SquashedDiagGaussianDistribution, StateDependentNoiseDistribution
from torch import nn

from sb3_ofexi.common.policies import XiMlp
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
            raise RuntimeError("get_std() is only available with gSDE: SAC_OFEXi(..., use_sde=True) or TQC_OFEXi")
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


class XiActorPolicyMixin:
    """For an :class:`~sb3_ofexi.common.policies.OFEXiPolicy` whose actor is an :class:`XiActor`
    (SAC's, TQC's): mixed in before it, builds the actor with gSDE's settings, resamples its
    noise, and counts gSDE's log_std in the deploy size. The policy sets ``use_sde`` and
    ``sde_kwargs`` (``log_std_init``, ``full_std``, ``use_expln``, ``clip_mean``) before ``_build``."""

    actor: XiActor
    activation_fn: type[nn.Module]
    use_xi: bool
    use_sde: bool
    sde_kwargs: dict[str, Any]

    def _make_actor(self, z_o_dim: int, action_dim: int, pi_arch: list[int]) -> XiActor:
        return XiActor(z_o_dim, action_dim, pi_arch, self.activation_fn, self.use_xi, self.use_sde, **self.sde_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "use_sde": self.use_sde, **self.sde_kwargs}  # type: ignore[misc]

    def reset_noise(self, batch_size: int = 1) -> None:
        """gSDE: resample the actor's exploration matrices (SB3's ``policy.reset_noise``)."""
        self.actor.reset_noise(batch_size=batch_size)

    def _actor_extra_params(self, widths: list[Any], d_z_o: Any) -> Any:
        """gSDE's log_std: one row per unit of the actor's last hidden layer."""
        if not self.actor.use_sde:
            return 0
        return (widths[-1] if widths else d_z_o) * self.actor.log_std.shape[1]
