"""PolyPruneSAC: SAC with gradual magnitude pruning on a cubic schedule (a peer method).

Zhu & Gupta (2018)'s polynomial schedule applied to SAC as in Graesser et al. (2022, "The state
of sparse training in deep RL", google-research/rigl ``rigl/rl``) and Obando-Ceron et al. (2024);
the EauDeQN paper calls it PolyPrune. Per-weight masks: the parameter count falls, the matrices
keep their shapes.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from stable_baselines3 import SAC
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv

from sb3_ofexi.common.complexity import count_params
from sb3_ofexi.common.loading import SafeLoadMixin
from sb3_ofexi.common.masks import check_mask_distribution, cubic_sparsity, zero_adam_moments_
from sb3_ofexi.common.schedule import env_steps, parse_schedule_point
from sb3_ofexi.common.validation import check_fraction, check_int, hand_to_policy
from sb3_ofexi.polyprune.policies import MlpPolicy, PolyPruneSACPolicy

SelfPolyPruneSAC = TypeVar("SelfPolyPruneSAC", bound="PolyPruneSAC")


class PolyPruneSAC(SafeLoadMixin, SAC):
    """SAC whose Linear weights are pruned by magnitude on the cubic schedule

    ``s_t = s_F (1 - (1 - (t - t_s) / (t_e - t_s))^3)`` for ``t_s <= t <= t_e`` (Zhu & Gupta 2018),

    the masks recomputed every ``mask_update_freq`` env steps, per layer with ERK densities
    (Evci et al. 2020). Defaults are rigl's SAC setup (Graesser et al. 2022): ``s_F = 0.9``,
    ``t_s`` / ``t_e`` at 20% / 80% of the budget, masks every 1,000 steps, actor and critic
    pruned with their output layers, biases never.

    A masked weight stays exactly zero: its gradient is masked before every optimizer step, its
    Adam moments are zeroed when its mask changes, and it is multiplied by its mask after every
    step (:mod:`sb3_ofexi.common.masks`). The critic target gets the masked weights by Polyak.

    :param final_sparsity: ``s_F``, the fraction of each pruned network's weights removed at ``t_e``
    :param prune_start: ``t_s``: a float in [0, 1] (fraction of the learn() budget) or an int (env steps)
    :param prune_end: ``t_e``, the same way; after it the sparsity stays at ``s_F``
    :param mask_update_freq: env steps between mask updates
    :param prune_actor: prune the actor too; ``False`` prunes the critic only (EauDeQN paper)
    :param mask_distribution: ``"erk"``, ``"uniform"`` or ``"global"``
    Other arguments: :class:`stable_baselines3.SAC`.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": MlpPolicy}
    policy: PolyPruneSACPolicy

    def __init__(
        self,
        policy: str | type[PolyPruneSACPolicy],
        env: GymEnv | str,
        *args: Any,
        final_sparsity: float = 0.9,
        prune_start: int | float = 0.2,
        prune_end: int | float = 0.8,
        mask_update_freq: int = 1000,
        prune_actor: bool = True,
        mask_distribution: str = "erk",
        policy_kwargs: dict[str, Any] | None = None,
        _init_setup_model: bool = True,
        **kwargs: Any,
    ) -> None:
        check_fraction("final_sparsity", final_sparsity)
        prune_start = parse_schedule_point(prune_start, "prune_start")
        prune_end = parse_schedule_point(prune_end, "prune_end")
        if type(prune_start) is type(prune_end) and prune_end < prune_start:
            raise ValueError(
                f"prune_end={prune_end!r} < prune_start={prune_start!r}: accepted: prune_start <= prune_end"
            )
        check_int("mask_update_freq", mask_update_freq, 1)
        check_mask_distribution(mask_distribution)
        policy_kwargs = hand_to_policy(
            policy_kwargs, "PolyPruneSAC", prune_actor=prune_actor, mask_distribution=mask_distribution
        )
        self.final_sparsity = float(final_sparsity)
        self.prune_start = prune_start
        self.prune_end = prune_end
        self.mask_update_freq = int(mask_update_freq)
        self.prune_actor = prune_actor
        self.mask_distribution = mask_distribution
        # the schedule's state (saved with the model): the sparsity in force and when it was set
        self.current_sparsity = 0.0
        self._last_mask_update = -1
        self._sparsities: dict[str, float] | None = None
        super().__init__(policy, env, *args, policy_kwargs=policy_kwargs, _init_setup_model=False, **kwargs)  # type: ignore[misc]
        if _init_setup_model:
            self._setup_model()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_sparsities"]  # recounted from the saved masks

    def _setup_model(self) -> None:
        super()._setup_model()
        self._sparsities = None
        if not isinstance(self.policy, PolyPruneSACPolicy):
            raise ValueError(
                f"policy={type(self.policy).__name__}: accepted: 'MlpPolicy' (PolyPruneSACPolicy) or a subclass of it"
            )

    # --- the schedule -------------------------------------------------------------------------
    def schedule_steps(self, total_timesteps: int | None = None) -> tuple[int, int]:
        """``(t_s, t_e)`` in env steps for a learn() budget (default: the current one)."""
        total = self._total_timesteps if total_timesteps is None else total_timesteps
        start, end = round(env_steps(self.prune_start, total)), round(env_steps(self.prune_end, total))
        return start, max(start, end)

    def target_sparsity(self, step: int | None = None) -> float:
        """``s_t`` of the cubic schedule at env step ``step`` (default: now)."""
        start, end = self.schedule_steps()
        step = self.num_timesteps if step is None else step
        if end == start:
            return self.final_sparsity if step >= end else 0.0
        return cubic_sparsity(step, self.final_sparsity, start, end)

    def _update_masks(self) -> None:
        """Every ``mask_update_freq`` env steps from ``t_s`` on, and once at ``t_e``: prune each
        network to ``s_t``. Sparsity never decreases (a budget extended by a later learn() call
        shifts the schedule; it does not regrow weights)."""
        start, end = self.schedule_steps()
        t = self.num_timesteps
        if t < start:
            return
        due = self._last_mask_update < 0 or t - self._last_mask_update >= self.mask_update_freq
        final = t >= end and self.current_sparsity < self.final_sparsity
        if not (due or final):
            return
        sparsity = max(self.current_sparsity, self.target_sparsity(t))
        self._last_mask_update = t
        if sparsity <= self.current_sparsity:
            return
        self.current_sparsity = sparsity
        masks = self.policy.weight_masks
        for group, optimizer in (("critic", self.critic.optimizer), ("actor", self.actor.optimizer)):
            if group in masks.groups:
                changed = masks.update_(group, sparsity)
                zero_adam_moments_(optimizer, masks, changed)
        self._sparsities = None  # recounted once, at the next log

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self._update_masks()
        super().train(gradient_steps, batch_size)
        self.logger.record("sparsity/target", self.current_sparsity)
        for group, value in self.sparsities().items():
            self.logger.record(f"sparsity/{group}", value)

    # --- counting (the same sense as SAC_OFEXi.param_counts) -------------------------------------
    def param_counts(self) -> dict[str, int]:
        """``deploy``: the actor's weights and biases that are not masked; ``train``: deploy plus the
        critic's (both Q-networks; the target is a copy and not counted, as for SAC_OFEXi)."""
        masks = self.policy.weight_masks
        deploy = count_params(self.actor) - masks.pruned(self.actor)
        return {"deploy": deploy, "train": deploy + count_params(self.critic) - masks.pruned(self.critic)}

    def sparsities(self) -> dict[str, float]:
        """Fraction of the masked weights removed, per pruned network (counted when the masks
        change, not at every train() call: counting reads every mask back from the device)."""
        if getattr(self, "_sparsities", None) is None:
            masks = self.policy.weight_masks
            self._sparsities = {group: masks.sparsity(group) for group in masks.groups}
        return dict(self._sparsities or {})
