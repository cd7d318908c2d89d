"""SAC_OFEXi's gradient step in pieces: pure tensor functions of (policy, minibatch, settings).

No optimizer call and no module-mode change inside: :class:`~sb3_ofexi.common.step.StepRunner`
runs them eagerly or compiles them, and ``SAC_OFEXi._gradient_step`` composes them with the
optimizer steps in Algorithm 1's order. ``nu`` is the nu C terms while the thetas learn, else None.
"""

from __future__ import annotations

from typing import cast

import torch as th
import torch.nn.functional as F

from sb3_ofexi.common.losses import NuTerms, ofe_loss, policy_forward
from sb3_ofexi.sac_ofexi.policies import SACOFEXiPolicy

__all__ = ["actor_loss", "critic_loss", "ofe_loss", "policy_forward"]


def critic_loss(
    policy: SACOFEXiPolicy,
    next_z_o: th.Tensor,
    z_oa: th.Tensor,
    rewards: th.Tensor,
    dones: th.Tensor,
    discounts: th.Tensor | float,
    ent_coef: th.Tensor,
    nu: NuTerms | None,
) -> tuple[th.Tensor, th.Tensor]:
    """Eq. (34) for the critics: SAC's TD loss + nu_q C_q; and the TD loss.

    Called with the actor in evaluation mode: networks not being updated are used in evaluation
    mode (Algorithm 1, section 3.3).
    """
    ofe = policy.ofe
    with th.no_grad():
        next_actions, next_log_prob = policy.actor.action_log_prob(next_z_o)
        next_q_values = th.cat(policy.critic_target(ofe.features_oa(next_z_o, next_actions)), dim=1)
        next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
        next_q_values = next_q_values - ent_coef * next_log_prob.reshape(-1, 1)
        target_q_values = rewards + (1 - dones) * discounts * next_q_values
    current_q_values = policy.critic(z_oa)
    td_loss = cast(th.Tensor, 0.5 * sum(F.mse_loss(current_q, target_q_values) for current_q in current_q_values))
    loss = td_loss
    if nu is not None and nu.nu_critic > 0:
        loss = loss + nu.critic(policy)  # OFE thetas as constants
    return loss, td_loss.detach()


def actor_loss(
    policy: SACOFEXiPolicy,
    z_o: th.Tensor,
    actions_pi: th.Tensor,
    log_prob: th.Tensor,
    ent_coef: th.Tensor,
    nu: NuTerms | None,
) -> tuple[th.Tensor, th.Tensor]:
    """Eq. (34) for the actor: SAC's actor loss + nu_pi C_pi; and SAC's actor loss.

    Differentiates through phi_oa and the critics w.r.t. the action only: called with their
    parameters' requires_grad off and the critics in evaluation mode.
    """
    q_values_pi = th.cat(policy.critic(policy.ofe.features_oa(z_o, actions_pi)), dim=1)
    min_qf_pi, _ = th.min(q_values_pi, dim=1, keepdim=True)
    sac_loss = (ent_coef * log_prob - min_qf_pi).mean()
    loss = sac_loss
    if nu is not None and nu.nu_actor > 0:
        loss = loss + nu.actor(policy)
    return loss, sac_loss.detach()
