"""TQC_OFEXi's gradient step in pieces: pure tensor functions of (policy, minibatch, settings), TQC's
losses as sb3-contrib's TQC computes them (Kuznetsov et al. 2020: the top quantiles of the pooled
target critics dropped, the quantile Huber loss), plus the nu C terms of eq. (34) while the
thetas learn (``nu``, else None). SAC's forward pass is shared (:func:`policy_forward`).
"""

from __future__ import annotations

import torch as th
from sb3_contrib.common.utils import quantile_huber_loss

from sb3_ofexi.common.losses import NuTerms, ofe_loss, policy_forward
from sb3_ofexi.tqc_ofexi.policies import TQCOFEXiPolicy

__all__ = ["actor_loss", "critic_loss", "ofe_loss", "policy_forward"]


def critic_loss(
    policy: TQCOFEXiPolicy,
    next_z_o: th.Tensor,
    z_oa: th.Tensor,
    rewards: th.Tensor,
    dones: th.Tensor,
    discounts: th.Tensor | float,
    ent_coef: th.Tensor,
    top_quantiles_to_drop_per_net: int,
    nu: NuTerms | None,
) -> tuple[th.Tensor, th.Tensor]:
    """Eq. (34) for the critics: TQC's quantile Huber loss against the truncated mixture of the
    target critics' quantiles + nu_q C_q; and TQC's loss. Called with the actor in evaluation mode."""
    ofe, critic = policy.ofe, policy.critic
    n_critics, n_quantiles = critic.n_critics, policy.n_quantiles
    with th.no_grad():
        next_actions, next_log_prob = policy.actor.action_log_prob(next_z_o)
        next_quantiles = th.stack(policy.critic_target(ofe.features_oa(next_z_o, next_actions)), dim=1)
        n_target_quantiles = n_quantiles * n_critics - top_quantiles_to_drop_per_net * n_critics
        next_quantiles, _ = th.sort(next_quantiles.reshape(next_z_o.shape[0], -1))
        next_quantiles = next_quantiles[:, :n_target_quantiles]
        target_quantiles = next_quantiles - ent_coef * next_log_prob.reshape(-1, 1)
        target_quantiles = rewards + (1 - dones) * discounts * target_quantiles
        target_quantiles = target_quantiles.unsqueeze(dim=1)  # (batch, 1, n_target_quantiles)
    current_quantiles = th.stack(critic(z_oa), dim=1)  # (batch, n_critics, n_quantiles)
    tqc_loss = quantile_huber_loss(current_quantiles, target_quantiles, sum_over_quantiles=False)
    loss = tqc_loss
    if nu is not None and nu.nu_critic > 0:
        loss = loss + nu.critic(policy)  # OFE thetas as constants
    return loss, tqc_loss.detach()


def actor_loss(
    policy: TQCOFEXiPolicy,
    z_o: th.Tensor,
    actions_pi: th.Tensor,
    log_prob: th.Tensor,
    ent_coef: th.Tensor,
    nu: NuTerms | None,
) -> tuple[th.Tensor, th.Tensor]:
    """Eq. (34) for the actor: TQC's ``E[alpha log pi - mean of all quantiles]`` + nu_pi C_pi; and
    TQC's loss. Called with phi_oa's and the critics' requires_grad off, critics in evaluation mode."""
    quantiles = th.stack(policy.critic(policy.ofe.features_oa(z_o, actions_pi)), dim=1)
    qf_pi = quantiles.mean(dim=2).mean(dim=1, keepdim=True)
    tqc_loss = (ent_coef * log_prob - qf_pi).mean()
    loss = tqc_loss
    if nu is not None and nu.nu_actor > 0:
        loss = loss + nu.actor(policy)
    return loss, tqc_loss.detach()
