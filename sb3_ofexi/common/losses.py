"""The nu C terms of eqs. (33)/(34) and OFENet's loss (eq. 33), as functions of explicit inputs.

Any OFEXi policy offers ``ofe`` (:class:`~sb3_ofexi.common.ofenet.OFEXiNet`), ``actor.net`` and
``critic.q_networks`` (gated MLPs), ``ofe_complexity(rho)`` and ``feature_widths()``; the terms
below read nothing else, so an algorithm's losses add them the same way whatever its RL losses.
"""

from __future__ import annotations

from typing import Any

import torch as th

from sb3_ofexi.common.config import OFEXiConfig
from sb3_ofexi.common.diagnostics import network_of


class NuTerms:
    """``nu * C`` of each network for one model: the constants of the config, and the budget's
    multipliers per network (phi_o, phi_oa, actor, critic) as a tensor, so that steering nu never
    changes what a compiled piece was built for. Used only while the thetas learn."""

    def __init__(self, config: OFEXiConfig, scale: th.Tensor) -> None:
        self.nu_ofe = config.nu_ofe
        self.nu_actor, self.nu_critic = config.rl_nu("actor"), config.rl_nu("critic")
        self.kind, self.rho = config.regulariser, config.rho
        self.scaled = config.has_budget
        self.scale = scale

    def ofe(self, policy: Any) -> th.Tensor:
        """nu_OFE times the regulariser of C_OFE (eqs. 28-29 or autograd)."""
        complexity = policy.ofe_complexity(self.rho)
        if self.scaled:  # phi_o and phi_oa answer to different budgets
            part_o, part_oa = complexity.regulariser_parts(self.kind)
            return self.nu_ofe * (self.scale[0] * part_o + self.scale[1] * part_oa)
        return self.nu_ofe * complexity.regulariser(self.kind)

    def actor(self, policy: Any) -> th.Tensor:
        """nu_pi times the regulariser of C_pi (eq. 32), the OFE widths as constants."""
        nu = self.nu_actor * self.scale[2] if self.scaled else self.nu_actor
        return nu * policy.actor.net.regulariser(policy.feature_widths()[0], self.kind)

    def critic(self, policy: Any) -> th.Tensor:
        """nu_q times the regulariser of every critic's C_q (eq. 32), the OFE widths as constants."""
        nu = self.nu_critic * self.scale[3] if self.scaled else self.nu_critic
        d_z_oa = policy.feature_widths()[1]
        return sum(nu * q_net.regulariser(d_z_oa, self.kind) for q_net in policy.critic.q_networks)  # type: ignore[return-value]

    def push(self, policy: Any, layers: dict[str, Any]) -> dict[str, th.Tensor]:
        """d(nu C)/dtheta per layer, each network's thetas by its own loss's nu term (as the step)."""
        push = {name: th.zeros_like(gate.theta) for name, gate in layers.items()}
        terms = (
            (("phi_o", "phi_oa"), self.nu_ofe, self.ofe),
            (("actor",), self.nu_actor, self.actor),
            (("critic",), self.nu_critic, self.critic),
        )
        for nets, nu, term in terms:
            names = [name for name in layers if network_of(name) in nets and layers[name].n_units > 0]
            if nu <= 0 or not names:
                continue
            with th.enable_grad():
                grads = th.autograd.grad(term(policy), [layers[name].theta for name in names], allow_unused=True)
            push.update({name: grad for name, grad in zip(names, grads) if grad is not None})
        return push


def ofe_loss(
    policy: Any,
    obs: th.Tensor,
    actions: th.Tensor,
    next_obs: th.Tensor,
    reduction: str,
    nu: NuTerms | None,
) -> tuple[th.Tensor, th.Tensor]:
    """Eq. (33): L_pred + nu_OFE C_OFE (the L2 part is Adam's weight decay); and L_pred.

    ``nu`` is None outside the learning phase (no regulariser). OFENet must be in training mode.
    """
    pred_loss = policy.ofe.pred_loss(obs, actions, next_obs, reduction=reduction)
    loss = pred_loss
    if nu is not None and nu.nu_ofe > 0:
        loss = loss + nu.ofe(policy)
    return loss, pred_loss.detach()


def ofe_features(
    policy: Any, obs: th.Tensor, next_obs: th.Tensor, actions: th.Tensor
) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """OFE features for the RL updates, in evaluation mode and without a graph: ``z_o, next_z_o, z_oa``
    (obs and next_obs in one batch, Algorithm 1 lines 12-13; BatchNorm uses its running statistics)."""
    ofe = policy.ofe
    with th.no_grad():
        z_o, next_z_o = ofe.features_o(th.cat([obs, next_obs])).chunk(2)
        return z_o, next_z_o, ofe.features_oa(z_o, actions)


def policy_forward(
    policy: Any, obs: th.Tensor, next_obs: th.Tensor, actions: th.Tensor
) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
    """:func:`ofe_features` and a stochastic actor's actions on z_o (with graph), SAC's and TQC's:
    ``z_o, next_z_o, z_oa, actions_pi, log_prob``.

    Everything returned is differentiated by one backward (the actor's): a compiled piece is one
    autograd node, so the entropy loss, which needs its own backward, is not here.
    """
    z_o, next_z_o, z_oa = ofe_features(policy, obs, next_obs, actions)
    actions_pi, log_prob = policy.actor.action_log_prob(z_o)
    return z_o, next_z_o, z_oa, actions_pi, log_prob.reshape(-1, 1)
