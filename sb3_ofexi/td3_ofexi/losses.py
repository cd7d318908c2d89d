"""TD3_OFEXi's gradient step in pieces: pure tensor functions of (policy, minibatch, settings), TD3's
losses as SB3's TD3 computes them (Fujimoto et al. 2018: clipped double Q, target policy
smoothing), plus the nu C terms of eq. (34) while the thetas learn (``nu``, else None).
"""

from __future__ import annotations

from typing import cast

import torch as th
import torch.nn.functional as F

from sb3_ofexi.common.losses import NuTerms, ofe_features, ofe_loss
from sb3_ofexi.td3_ofexi.policies import TD3OFEXiPolicy

__all__ = ["actor_loss", "critic_loss", "ofe_features", "ofe_loss"]


def critic_loss(
    policy: TD3OFEXiPolicy,
    next_z_o: th.Tensor,
    z_oa: th.Tensor,
    actions: th.Tensor,
    rewards: th.Tensor,
    dones: th.Tensor,
    discounts: th.Tensor | float,
    target_policy_noise: float,
    target_noise_clip: float,
    nu: NuTerms | None,
) -> tuple[th.Tensor, th.Tensor]:
    """Eq. (34) for the critics: TD3's loss (the sum of each critic's MSE to the clipped double-Q
    target of the smoothed target action) + nu_q C_q; and TD3's loss."""
    ofe = policy.ofe
    with th.no_grad():
        noise = actions.clone().normal_(0, target_policy_noise).clamp(-target_noise_clip, target_noise_clip)
        next_actions = (policy.actor_target(next_z_o) + noise).clamp(-1, 1)
        next_q_values = th.cat(policy.critic_target(ofe.features_oa(next_z_o, next_actions)), dim=1)
        next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
        target_q_values = rewards + (1 - dones) * discounts * next_q_values
    current_q_values = policy.critic(z_oa)
    td_loss = cast(th.Tensor, sum(F.mse_loss(current_q, target_q_values) for current_q in current_q_values))
    loss = td_loss
    if nu is not None and nu.nu_critic > 0:
        loss = loss + nu.critic(policy)  # OFE thetas as constants
    return loss, td_loss.detach()


def actor_loss(policy: TD3OFEXiPolicy, z_o: th.Tensor, nu: NuTerms | None) -> tuple[th.Tensor, th.Tensor]:
    """Eq. (34) for the actor: TD3's ``-E[Q_1(o, mu(o))]`` + nu_pi C_pi; and TD3's loss.

    Differentiates through phi_oa and the first critic w.r.t. the action only: called with their
    parameters' requires_grad off and the critics in evaluation mode.
    """
    q1_pi = policy.critic.q_networks[0](policy.ofe.features_oa(z_o, policy.actor(z_o)))
    td3_loss = -q1_pi.mean()
    loss = td3_loss
    if nu is not None and nu.nu_actor > 0:
        loss = loss + nu.actor(policy)
    return loss, td3_loss.detach()
