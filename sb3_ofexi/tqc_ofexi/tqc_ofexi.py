"""TQC_OFEXi: TQC (Kuznetsov et al. 2020, as sb3-contrib's TQC) on OFEXiNet features, pruned while it
learns.

Algorithm 1 of Guenter & Sideris (arXiv 2507.11975) with TQC in SAC's place: per gradient step one
OFE update (eq. 33), then TQC's entropy, quantile-critic and actor updates, each RL loss plus
``nu * C_x`` (eq. 34) while the thetas learn. What is not TQC's is
:class:`~sb3_ofexi.common.algorithm.OFEXiAlgorithm`'s.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import torch as th
from sb3_contrib import TQC
from stable_baselines3.common.policies import BasePolicy

from sb3_ofexi.common.algorithm import OFEXiAlgorithm, update_entropy_coef
from sb3_ofexi.common.step import descend, no_param_grad, sample_step_batch
from sb3_ofexi.tqc_ofexi import losses
from sb3_ofexi.tqc_ofexi.policies import MlpPolicy, MultiInputPolicy, TQCOFEXiPolicy


class StepPieces(NamedTuple):
    """The parts of TQC_OFEXi's gradient step that may be compiled (:mod:`.losses`)."""

    ofe_loss: Any = losses.ofe_loss
    policy_forward: Any = losses.policy_forward
    critic_loss: Any = losses.critic_loss
    actor_loss: Any = losses.actor_loss


class TQC_OFEXi(OFEXiAlgorithm, TQC):  # noqa: N801 (the paper's naming)
    """TQC with OFEXiNet features whose networks are pruned while they learn.

    ``TQC_OFEXi(policy, env, preset=None, *, ...OFEXi settings..., **tqc_kwargs)``: the OFEXi
    settings are documented on :class:`~sb3_ofexi.common.algorithm.OFEXiAlgorithm` (as for
    :class:`~sb3_ofexi.SAC_OFEXi`); ``tqc_kwargs`` is everything :class:`sb3_contrib.TQC` accepts
    (``top_quantiles_to_drop_per_net``, ``ent_coef``, ``use_sde``...; ``n_quantiles`` and
    ``n_critics`` in ``policy_kwargs``).

    Each critic's last layer gives its quantiles, so the quantiles count in C_q (eq. 31) as a
    Q-network's one output does. nu_pi and nu_q meet TQC's losses through the OFENet code's SAC
    conventions under ``nu_rl_reference="ofenet"`` (docs/CALIBRATION.md, "Beyond SAC").
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    ofexi_name = "TQC_OFEXi"
    policy_base = TQCOFEXiPolicy
    rl_losses = "tqc"
    policy: TQCOFEXiPolicy  # type: ignore[assignment]  # sb3-contrib types it TQCPolicy

    def _step_pieces(self) -> StepPieces:
        return StepPieces()

    def _setup_model(self) -> None:
        super()._setup_model()
        drop, n_quantiles = self.top_quantiles_to_drop_per_net, self.policy.n_quantiles
        if isinstance(drop, bool) or not isinstance(drop, int) or not 0 <= drop < n_quantiles:
            raise ValueError(
                f"top_quantiles_to_drop_per_net={drop!r} with n_quantiles={n_quantiles}: accepted: an int in "
                f"[0, {n_quantiles - 1}] (the target keeps n_quantiles - drop quantiles of each critic)"
            )

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        diagnostics = self._begin_train(batch_size)  # theta phase, learning rates, budgets, the step's build
        runner = self.step_runner
        target_in_graph = self.target_update_interval == 1  # a CUDA graph captures the step with it
        stats: dict[str, list[th.Tensor]] = {
            k: [] for k in ("aux_loss", "ent_coef", "ent_coef_loss", "actor_loss", "critic_loss")
        }
        for gradient_step in range(gradient_steps):
            batch = sample_step_batch(self.policy, self.replay_buffer, batch_size, self._vec_normalize_env)
            if self.use_sde:  # as TQC: log_std may have changed since the last step
                self.actor.reset_noise()
            update_target = gradient_step % self.target_update_interval == 0
            step_stats = runner.run(self._gradient_step, batch, update_target, target_in_graph)
            if runner.graphed and update_target and not target_in_graph:
                self.target_update(self.tau)
            for key, value in step_stats.items():
                stats[key].append(value)
            if diagnostics is not None:
                diagnostics.accumulate()
        self._end_train(gradient_steps, stats, diagnostics)

    def _gradient_step(self, batch: dict[str, th.Tensor], update_target: bool) -> dict[str, th.Tensor]:
        """One gradient step: OFE (eq. 33), TQC's entropy, critic and actor updates, each followed
        by the thetas' projection (eq. 6), and the critic targets' Polyak update."""
        policy, actor, critic, pieces = self.policy, self.actor, self.critic, self.step_runner.pieces
        nu = self.theta_control.nu if self.theta_control.learning else None  # the nu C terms of eq. (34)
        thetas = self._thetas if nu is not None else {}
        stats = {"aux_loss": self._ofe_step(batch["ofe_obs"], batch["ofe_actions"], batch["ofe_next_obs"])}
        z_o, next_z_o, z_oa, actions_pi, log_prob = pieces.policy_forward(
            policy, batch["obs"], batch["next_obs"], batch["actions"]
        )
        ent_coef = update_entropy_coef(self, log_prob, stats)  # SAC's entropy update, as TQC's

        actor.train(False)  # networks not being updated run in evaluation mode (section 3.3)
        critic_loss, stats["critic_loss"] = pieces.critic_loss(
            policy,
            next_z_o,
            z_oa,
            batch["rewards"],
            batch["dones"],
            batch.get("discounts", self.gamma),
            ent_coef,
            self.top_quantiles_to_drop_per_net,
            nu,
        )
        actor.train(True)
        descend(critic_loss, critic.optimizer, thetas.get("critic", []))

        with no_param_grad(policy.ofe, critic):  # the actor's gradient flows through them to the action
            critic.train(False)
            actor_loss, stats["actor_loss"] = pieces.actor_loss(policy, z_o, actions_pi, log_prob, ent_coef, nu)
            critic.train(True)
        descend(actor_loss, actor.optimizer, thetas.get("actor", []))

        if update_target:
            self.target_update(self.tau)  # Polyak weights, copied thetas
        return stats
