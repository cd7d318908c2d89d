"""TD3 policy on OFEXiNet features: a deterministic gated actor and its target, on the shared OFEXi
policy (:mod:`sb3_ofexi.common.policies`; SPEC sections 2-3, 6-7)."""

from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from sb3_ofexi.common.policies import OFEXiPolicy, XiMlp, prune_with_target
from sb3_ofexi.common.surgery import Surgery
from sb3_ofexi.common.xi import XiGate


class XiDeterministicActor(nn.Module):
    """TD3's actor on z_o: ``tanh(XiMlp(z_o))``, the action in [-1, 1] (SB3's TD3 Actor)."""

    def __init__(
        self, z_o_dim: int, action_dim: int, net_arch: list[int], activation_fn: type[nn.Module], use_xi: bool
    ):
        super().__init__()
        self.action_dim = action_dim
        self.net = XiMlp(z_o_dim, net_arch, action_dim, activation_fn, use_xi)
        self.optimizer: th.optim.Optimizer

    def forward(self, z_o: th.Tensor, deterministic: bool = True) -> th.Tensor:
        return th.tanh(self.net(z_o))  # deterministic either way: TD3 explores with action noise

    def prune_(self, keep_in: th.Tensor, keep_units: list[th.Tensor], surgery: Surgery) -> th.Tensor:
        return self.net.prune_(keep_in, keep_units, surgery)


class TD3OFEXiPolicy(OFEXiPolicy):
    """TD3 policy whose actor reads z_o = phi_o(o) and whose critics read z_oa = phi_oa([z_o, a]):
    :class:`~sb3_ofexi.common.policies.OFEXiPolicy` with a deterministic :class:`XiDeterministicActor`
    and its target, which carries the actor's thetas as the critic targets carry the critics'.

    The parameters are :class:`OFEXiPolicy`'s (TD3's default ``activation_fn`` is ReLU, as SB3's).
    """

    actor: XiDeterministicActor
    actor_target: XiDeterministicActor

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
        self._build(lr_schedule)

    def _make_actor(self, z_o_dim: int, action_dim: int, pi_arch: list[int]) -> XiDeterministicActor:
        return XiDeterministicActor(z_o_dim, action_dim, pi_arch, self.activation_fn, self.use_xi)

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        actor = self.actor
        self.actor_target = self._make_actor(actor.net.in_features, actor.action_dim, actor.net.units)
        self.actor_target.load_state_dict(actor.state_dict())
        self.actor_target.train(False)
        for param in self.actor_target.parameters():  # updated by Polyak averaging only
            param.requires_grad_(False)
        self.actor_target.to(self.device)

    def xi_target_pairs(self) -> list[tuple[XiGate, XiGate]]:
        """The critics' pairs and (actor gate, its target's gate)."""
        return [*super().xi_target_pairs(), *zip(self.actor.net.gates, self.actor_target.net.gates)]

    def _prune_actor(self, keep_z_o: th.Tensor, theta_tol: float, surgery: Surgery) -> None:
        """The actor and its target lose the same units (the target mirrors its actor, as the
        critic targets mirror theirs), the target carrying the actor's thetas."""
        actor, target = self.actor, self.actor_target
        prune_with_target(actor, target, actor.net, target.net, keep_z_o, theta_tol, surgery)


MlpPolicy = TD3OFEXiPolicy
#: dict observations (Box / MultiBinary entries): the same policy, phi_o reads the flattened dict
MultiInputPolicy = TD3OFEXiPolicy
