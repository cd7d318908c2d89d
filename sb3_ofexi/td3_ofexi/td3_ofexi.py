"""TD3_OFEXi: TD3 (Fujimoto et al. 2018, as SB3's TD3) on OFEXiNet features, pruned while it learns.

Algorithm 1 of Guenter & Sideris (arXiv 2507.11975) with TD3 in SAC's place: per gradient step one
OFE update (eq. 33), then TD3's critic update and, every ``policy_delay`` steps, its actor update
and the Polyak update of the critic and actor targets; each RL loss plus ``nu * C_x`` (eq. 34)
while the thetas learn. What is not TD3's is :class:`~sb3_ofexi.common.algorithm.OFEXiAlgorithm`'s.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import torch as th
from stable_baselines3 import TD3
from stable_baselines3.common.policies import BasePolicy

from sb3_ofexi.common.algorithm import OFEXiAlgorithm
from sb3_ofexi.common.step import descend, no_param_grad, sample_step_batch
from sb3_ofexi.common.validation import check_int
from sb3_ofexi.td3_ofexi import losses
from sb3_ofexi.td3_ofexi.policies import MlpPolicy, MultiInputPolicy, TD3OFEXiPolicy


class StepPieces(NamedTuple):
    """The parts of TD3_OFEXi's gradient step that may be compiled (:mod:`.losses`)."""

    ofe_loss: Any = losses.ofe_loss
    ofe_features: Any = losses.ofe_features
    critic_loss: Any = losses.critic_loss
    actor_loss: Any = losses.actor_loss


class TD3_OFEXi(OFEXiAlgorithm, TD3):  # noqa: N801 (the paper's naming)
    """TD3 with OFEXiNet features whose networks are pruned while they learn.

    ``TD3_OFEXi(policy, env, preset=None, *, ...OFEXi settings..., **td3_kwargs)``: the OFEXi
    settings are documented on :class:`~sb3_ofexi.common.algorithm.OFEXiAlgorithm` (as for
    :class:`~sb3_ofexi.SAC_OFEXi`); ``td3_kwargs`` is everything :class:`stable_baselines3.TD3`
    accepts (``action_noise``, ``policy_delay``, ``target_policy_noise``, ``target_noise_clip``...).

    The actor target carries the actor's thetas (copied at every target update, pruned with the
    actor). Under ``nu_rl_reference="ofenet"`` nu_pi / 5 and nu_q / 25 meet TD3's losses: the OFENet
    code's SAC conventions (rewards x5), for which Table 2's nu was chosen, carried over
    (docs/CALIBRATION.md, "Beyond SAC"). With
    ``policy_delay > 1`` a step with and one without the actor update differ, so on CUDA the
    step runs eagerly rather than as one CUDA graph.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    ofexi_name = "TD3_OFEXi"
    policy_base = TD3OFEXiPolicy
    rl_losses = "td3"
    policy: TD3OFEXiPolicy  # type: ignore[assignment]  # SB3 types it TD3Policy

    @classmethod
    def _check_algo_kwargs(cls, algo_kwargs: dict[str, Any]) -> None:
        if "use_sde" in algo_kwargs:
            raise ValueError(
                "use_sde: TD3 (and so TD3_OFEXi) has no gSDE; accepted: action_noise (e.g. NormalActionNoise), "
                "or TQC_OFEXi / SAC_OFEXi with use_sde=True"
            )
        check_int("policy_delay", algo_kwargs.get("policy_delay", 2), 1)  # critic updates per actor update

    def _step_pieces(self) -> StepPieces:
        return StepPieces()

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.config.compile_step is True and self.policy_delay > 1 and self.device.type == "cuda":
            raise ValueError(
                f"compile_step=True on CUDA with policy_delay={self.policy_delay}: the steps with and without "
                "the delayed actor update differ, so no one CUDA graph runs them; accepted: compile_step='auto' "
                "or False (the step runs eagerly), or policy_delay=1"
            )

    def _target_pairs(self) -> tuple[th.nn.Module, th.nn.Module]:
        """Critics and actor, with their targets (TD3 averages both)."""
        return th.nn.ModuleList([self.critic, self.actor]), th.nn.ModuleList([self.critic_target, self.actor_target])

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        delayed = self.policy_delay > 1
        why = "TD3's delayed policy update (policy_delay > 1) makes steps of two kinds" if delayed else ""
        diagnostics = self._begin_train(batch_size, graph_blocker=why)  # theta phase, learning rates, the step
        stats: dict[str, list[th.Tensor]] = {k: [] for k in ("aux_loss", "critic_loss", "actor_loss")}
        for gradient_step in range(gradient_steps):
            batch = sample_step_batch(self.policy, self.replay_buffer, batch_size, self._vec_normalize_env)
            # as SB3's TD3, which counts the update before asking: actor and targets every policy_delay steps
            update_actor = (self._n_updates + gradient_step + 1) % self.policy_delay == 0
            step_stats = self.step_runner.run(self._gradient_step, batch, update_actor, target_in_graph=True)
            for key, value in step_stats.items():
                stats[key].append(value)
            if diagnostics is not None:  # the actor's theta gradients are its last update's between updates
                diagnostics.accumulate(skip=() if update_actor else ("actor",))
        self._end_train(gradient_steps, stats, diagnostics)

    def _gradient_step(self, batch: dict[str, th.Tensor], update_actor: bool) -> dict[str, th.Tensor]:
        """One gradient step: OFE (eq. 33), TD3's critic update and, when ``update_actor``, its actor
        update and the targets' Polyak update; each followed by the thetas' projection (eq. 6)."""
        policy, actor, critic, pieces = self.policy, self.actor, self.critic, self.step_runner.pieces
        nu = self.theta_control.nu if self.theta_control.learning else None  # the nu C terms of eq. (34)
        thetas = self._thetas if nu is not None else {}
        stats = {"aux_loss": self._ofe_step(batch["ofe_obs"], batch["ofe_actions"], batch["ofe_next_obs"])}
        z_o, next_z_o, z_oa = pieces.ofe_features(policy, batch["obs"], batch["next_obs"], batch["actions"])
        critic_loss, stats["critic_loss"] = pieces.critic_loss(
            policy,
            next_z_o,
            z_oa,
            batch["actions"],
            batch["rewards"],
            batch["dones"],
            batch.get("discounts", self.gamma),
            self.target_policy_noise,
            self.target_noise_clip,
            nu,
        )
        descend(critic_loss, critic.optimizer, thetas.get("critic", []))
        if update_actor:
            with no_param_grad(policy.ofe, critic):  # the actor's gradient flows through them to the action
                critic.train(False)
                actor_loss, stats["actor_loss"] = pieces.actor_loss(policy, z_o, nu)
                critic.train(True)
            descend(actor_loss, actor.optimizer, thetas.get("actor", []))
            self.target_update(self.tau)  # Polyak weights, copied thetas
        return stats
