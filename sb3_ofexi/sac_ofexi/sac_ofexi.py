"""SAC_OFEXi: Soft Actor-Critic on OFEXiNet features that prunes itself while it learns.

Guenter & Sideris, "Online Training and Pruning of Deep Reinforcement Learning Networks"
(arXiv 2507.11975), Algorithm 1; SPEC sections 1-5, 7, 8. The losses are the pure functions of
:mod:`sb3_ofexi.sac_ofexi.losses`; the thetas' phases, rounding, pruning and budgets are the
:class:`~sb3_ofexi.common.theta_control.ThetaController`'s; how a step runs (eager, compiled, CUDA
graph) is the :class:`~sb3_ofexi.common.step.StepRunner`'s.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.policies import BasePolicy

from sb3_ofexi.common.algorithm import OFEXiAlgorithm, update_entropy_coef
from sb3_ofexi.common.step import descend, no_param_grad, sample_step_batch
from sb3_ofexi.sac_ofexi import losses
from sb3_ofexi.sac_ofexi.policies import MlpPolicy, MultiInputPolicy, SACOFEXiPolicy


class StepPieces(NamedTuple):
    """The parts of SAC_OFEXi's gradient step that may be compiled (:mod:`.losses`)."""

    ofe_loss: Any = losses.ofe_loss
    policy_forward: Any = losses.policy_forward
    critic_loss: Any = losses.critic_loss
    actor_loss: Any = losses.actor_loss


class SAC_OFEXi(OFEXiAlgorithm, SAC):  # noqa: N801 (the paper's name)
    """SAC with OFEXiNet features whose networks are pruned while they learn.

    Per gradient step (Algorithm 1): one OFE update on its own minibatch (eq. 33), then SAC's
    entropy, critic and actor updates on features of OFEXiNet in evaluation mode, each RL loss
    plus ``lambda/2 ||W||^2 + nu * C_x`` (eq. 34), thetas projected into [0, 1] after every step;
    every ``prune_freq`` env steps units with theta < theta_tol are removed from the tensors.
    The settings become ``model.config`` (:class:`~sb3_ofexi.common.config.OFEXiConfig`).

    ``SAC_OFEXi(policy, env, preset=None, *, ...OFEXi settings..., **sac_kwargs)``: the OFEXi
    settings (``ofe_layers``, ``ofe_units``, ``use_xi``, the nus and lambdas, ``rho``,
    ``regulariser``, ``pred_loss``, ``nu_rl_reference``, ``theta_tol``, ``theta_lr``,
    ``xi_start``, ``xi_round``, ``prune_freq``, ``theta_diagnostics_freq``,
    ``ofe_pretrain_steps``, ``ofe_target_dim``, ``compile_step``, the budgets) are documented
    on :class:`~sb3_ofexi.common.algorithm.OFEXiAlgorithm`; ``preset`` is ``ofe``, ``ofe-big``,
    ``prune-a``, ``prune-b`` or ``prune-c`` (``None``: prune-b); ``sac_kwargs`` is everything
    :class:`stable_baselines3.SAC` accepts (``use_sde=True``: gSDE, as SB3's SAC).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    ofexi_name = "SAC_OFEXi"
    policy_base = SACOFEXiPolicy
    rl_losses = "sac"
    policy: SACOFEXiPolicy  # type: ignore[assignment]  # SB3 types it SACPolicy

    def _step_pieces(self) -> StepPieces:
        return StepPieces()

    def paper_param_counts(self) -> dict[str, int]:
        """Table 4's convention: train leaves f_pred out and counts the paper's V network (docs/COMPLEXITY.md)."""
        return self.policy.paper_param_counts()

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        diagnostics = self._begin_train(batch_size)  # theta phase, learning rates, budgets, the step's build
        runner = self.step_runner
        target_in_graph = self.target_update_interval == 1  # a CUDA graph captures the step with it
        stats: dict[str, list[th.Tensor]] = {
            k: [] for k in ("aux_loss", "ent_coef", "ent_coef_loss", "actor_loss", "critic_loss")
        }
        for gradient_step in range(gradient_steps):
            batch = sample_step_batch(self.policy, self.replay_buffer, batch_size, self._vec_normalize_env)
            if self.use_sde:  # as SB3's SAC: log_std may have changed since the last step
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
        """One gradient step of Algorithm 1 (lines 7-21) on sampled minibatches; its losses.

        The eager reference, and what a CUDA graph captures: tensor operations only (no host sync,
        no data-dependent Python). Each update is a loss piece, then :func:`descend` (the optimizer
        step and, while thetas learn, their projection into [0, 1], eq. 6).
        """
        policy, actor, critic, pieces = self.policy, self.actor, self.critic, self.step_runner.pieces
        nu = self.theta_control.nu if self.theta_control.learning else None  # the nu C terms of eq. (34)
        thetas = self._thetas if nu is not None else {}
        stats = {"aux_loss": self._ofe_step(batch["ofe_obs"], batch["ofe_actions"], batch["ofe_next_obs"])}
        z_o, next_z_o, z_oa, actions_pi, log_prob = pieces.policy_forward(
            policy, batch["obs"], batch["next_obs"], batch["actions"]
        )
        ent_coef = update_entropy_coef(self, log_prob, stats)  # SAC's entropy update

        actor.train(False)  # networks not being updated run in evaluation mode (section 3.3)
        discounts = batch.get("discounts", self.gamma)
        critic_loss, stats["critic_loss"] = pieces.critic_loss(
            policy, next_z_o, z_oa, batch["rewards"], batch["dones"], discounts, ent_coef, nu
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
