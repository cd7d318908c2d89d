"""EauDeSAC: SAC whose critic finds its own sparsity schedule (Vincent et al., "Eau De Q-Network").

A population of K online critics at sparsity levels >= the target's learns from one shared target
(so the TD loss acts as a distillation loss). Every ``selection_period`` gradient steps the member
with the lowest cumulated TD loss becomes the target's source, and the population is renewed:
the winner stays (elitism), the other places are filled by tournament selection, and duplicated
members are pruned further to a newly sampled sparsity (the paper's eq. 3) with a fresh optimizer.
The final sparsity is discovered, not chosen. Critic-only pruning, as in the paper.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
import torch.nn.functional as F
from stable_baselines3 import SAC
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, TrainFreq, TrainFrequencyUnit
from stable_baselines3.common.utils import polyak_update

from sb3_ofexi.common.complexity import count_params
from sb3_ofexi.common.loading import SafeLoadMixin
from sb3_ofexi.common.masks import check_mask_distribution, linear_layers
from sb3_ofexi.common.schedule import env_steps, parse_schedule_point
from sb3_ofexi.common.validation import check_fraction, check_int, hand_to_policy
from sb3_ofexi.eaudesac.policies import CriticPopulation, EauDeSACPolicy, MlpPolicy

SelfEauDeSAC = TypeVar("SelfEauDeSAC", bound="EauDeSAC")

#: which online critic the actor's loss reads
ACTOR_CRITICS = ("sampled", "elite")


def sample_sparsity(
    rng: np.random.Generator, sparsity: float, step: int, end: int, period: int, regime: float, max_jump: float
) -> float:
    """A duplicated member's new sparsity (the paper's eq. 3, its constants chosen here).

    The line from ``(step, sparsity)`` to ``(end, 1)`` reaches ``s + (1 - s) * period / (end - step)``
    one period ahead. The jump ``u * regime * (1 - s) * period / (end - step)``, ``u ~ U(0, 1)``,
    is scaled by the regime parameter and capped so that it removes at most ``max_jump`` of the
    remaining weights. With ``regime = 2`` the mean jump lands on the line.
    """
    remaining = 1.0 - sparsity
    left = max(end - step, period)
    jump = rng.uniform() * regime * remaining * period / left
    return float(min(sparsity + min(jump, max_jump * remaining), 1.0 - 1e-6))


class EauDeSAC(SafeLoadMixin, SAC):
    """EauDeSAC (Vincent et al. 2025, Algorithm 2), on SB3's SAC.

    The paper's text lost its constants; the values chosen here, and why:

    * ``population_size = 5``: the population size of AdaDQN (Vincent et al. 2025b), whose
      population machinery EauDeQN reuses; the paper reports EauDeSAC stable over a range of K.
    * ``selection_period = 1000`` gradient steps: PolyPrune's mask period in rigl's SAC setup (the
      paper notes PolyPrune is DistillQN with its pruning period synchronised with the target
      update period), and long enough for a member pruned further, with a fresh Adam, to recover
      before it is compared. SAC's target is a Polyak average, updated every step: between
      selections it tracks the elite (the last winner); at a selection it takes the winner's mask.
    * ``regime = 2`` ("normal"; the paper's ambitious / aggressive regimes scale it up): the jump
      is ``u * regime`` times the step to the line towards sparsity 1 at the end of training,
      ``u ~ U(0, 1)``, so on average a new member lands on that line and half of them explore past it.
    * ``max_jump = 0.1``: one jump removes at most 10% of the remaining weights, which binds only
      in the last ~10 periods, where the line to sparsity 1 becomes steep.
    * tournaments of 3 (AdaDQN), drawn without replacement.
    * ``actor_critic = "sampled"``: the paper picks the online network that acts with probability
      proportional to 1 / cumulated loss. In SAC the actor acts, and the critic's role in acting
      is its gradient on the actor, so each actor step reads one online member drawn that way
      (min over its twin Q). ``"elite"`` reads the last winner instead.

    :param population_size: K online critics (each a twin-Q pair)
    :param selection_period: T, gradient steps between selections
    :param regime: scale of the sampled sparsity jump (eq. 3)
    :param max_jump: the cap: fraction of the remaining weights one jump may remove
    :param tournament_size: members drawn per tournament
    :param prune_end: when the line reaches sparsity 1: a float in (0, 1] (fraction of the
        learn() budget; default 1.0, the end of training) or an int (env steps)
    :param actor_critic: ``"sampled"`` or ``"elite"``
    :param mask_distribution: ``"erk"``, ``"uniform"`` or ``"global"``
    Other arguments: :class:`stable_baselines3.SAC`.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": MlpPolicy}
    policy: EauDeSACPolicy  # type: ignore[assignment]
    critic: CriticPopulation  # type: ignore[assignment]
    train_freq: TrainFreq  # type: ignore[assignment]  # SB3 converts it in _setup_model

    def __init__(
        self,
        policy: str | type[EauDeSACPolicy],
        env: GymEnv | str,
        *args: Any,
        population_size: int = 5,
        selection_period: int = 1000,
        regime: float = 2.0,
        max_jump: float = 0.1,
        tournament_size: int = 3,
        prune_end: int | float = 1.0,
        actor_critic: str = "sampled",
        mask_distribution: str = "erk",
        policy_kwargs: dict[str, Any] | None = None,
        _init_setup_model: bool = True,
        **kwargs: Any,
    ) -> None:
        check_int("population_size", population_size, 2)
        check_int("selection_period", selection_period, 1)
        check_int("tournament_size", tournament_size, 1, population_size)
        if isinstance(regime, bool) or not isinstance(regime, (int, float)) or not np.isfinite(regime) or regime <= 0:
            raise ValueError(f"regime={regime!r}: accepted: a number > 0")
        check_fraction("max_jump", max_jump, low=0.0, high=1.0, high_open=False)
        if max_jump == 0:
            raise ValueError("max_jump=0: accepted: a number in (0, 1] (0 would never prune)")
        prune_end = parse_schedule_point(prune_end, "prune_end")
        if actor_critic not in ACTOR_CRITICS:
            raise ValueError(f"actor_critic={actor_critic!r}: accepted: {', '.join(ACTOR_CRITICS)}")
        check_mask_distribution(mask_distribution)
        policy_kwargs = hand_to_policy(
            policy_kwargs, "EauDeSAC", population_size=population_size, mask_distribution=mask_distribution
        )
        self.population_size = int(population_size)
        self.selection_period = int(selection_period)
        self.regime = float(regime)
        self.max_jump = float(max_jump)
        self.tournament_size = int(tournament_size)
        self.prune_end = prune_end
        self.actor_critic = actor_critic
        self.mask_distribution = mask_distribution
        # the population's state, saved with the model
        self.member_sparsities = [0.0] * self.population_size
        self.cumulated_losses = [0.0] * self.population_size
        self.elite = 0
        self.selections = 0
        self._period_steps = 0
        self.sparsity_history: list[tuple[int, float]] = []  # (env step, target sparsity) at each selection
        super().__init__(policy, env, *args, policy_kwargs=policy_kwargs, _init_setup_model=False, **kwargs)  # type: ignore[misc]
        self._population_rng = np.random.default_rng(self.seed)
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        super()._setup_model()
        if not isinstance(self.policy, EauDeSACPolicy):
            raise ValueError(
                f"policy={type(self.policy).__name__}: accepted: 'MlpPolicy' (EauDeSACPolicy) or a subclass"
            )
        if self.train_freq.unit != TrainFrequencyUnit.STEP:
            raise ValueError(
                f"train_freq={self.train_freq}: accepted: a frequency in env steps (the sparsity line's "
                "time axis is env steps)"
            )
        if self.target_update_interval != 1:
            raise ValueError(
                f"target_update_interval={self.target_update_interval}: accepted: 1 (the target "
                "tracks the elite every step)"
            )

    # --- sparsity -------------------------------------------------------------------------------
    def target_sparsity(self) -> float:
        """The target's sparsity: the elite's (the last winner's)."""
        return self.member_sparsities[self.elite]

    def sparsities(self) -> dict[str, Any]:
        masks = self.policy.weight_masks
        members = [masks.sparsity(self.policy.member_group(k)) for k in range(self.population_size)]
        return {"critic": members[self.elite], "members": members}

    def param_counts(self) -> dict[str, int]:
        """``deploy``: the actor (dense); ``train``: actor plus every online critic's unmasked
        weights and biases (the population is what training holds; the target is not counted)."""
        deploy = count_params(self.actor)
        masks = self.policy.weight_masks
        return {"deploy": deploy, "train": deploy + count_params(self.critic) - masks.pruned(self.critic)}

    # --- the gradient step -------------------------------------------------------------------------
    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers += [self.ent_coef_optimizer]
        self._update_learning_rate(optimizers)
        members = self.critic.members
        elite_params = list(members[self.elite].parameters())
        ent_coefs, ent_coef_losses, actor_losses, critic_losses = [], [], [], []
        for _ in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            if self.use_sde:
                self.actor.reset_noise()
            actions_pi, log_prob = self.actor.action_log_prob(replay_data.observations)
            log_prob = log_prob.reshape(-1, 1)

            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                ent_coef = th.exp(self.log_ent_coef.detach())
                ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()  # type: ignore[operator]  # a float at run time
                ent_coef_losses.append(ent_coef_loss.item())
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()
            else:
                ent_coef = self.ent_coef_tensor
            ent_coefs.append(ent_coef.item())

            with th.no_grad():  # one shared target for the whole population
                next_actions, next_log_prob = self.actor.action_log_prob(replay_data.next_observations)
                next_q = th.cat(self.critic_target(replay_data.next_observations, next_actions), dim=1)
                next_q = th.min(next_q, dim=1, keepdim=True)[0] - ent_coef * next_log_prob.reshape(-1, 1)
                target_q = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q

            # every member regresses the same target: the TD loss is a distillation loss
            losses = th.stack(
                [
                    0.5 * sum(F.mse_loss(q, target_q) for q in member(replay_data.observations, replay_data.actions))  # type: ignore[misc]
                    for member in members
                ]
            )
            self.critic.optimizer.zero_grad()
            losses.sum().backward()  # members share no weights: each gets its own gradient
            self.critic.optimizer.step()
            detached = losses.detach().cpu().numpy()
            self.cumulated_losses = [c + float(x) for c, x in zip(self.cumulated_losses, detached)]
            critic_losses.append(float(detached[self.elite]))

            reader = self._actor_critic_index()
            q_pi = th.cat(members[reader](replay_data.observations, actions_pi), dim=1)
            actor_loss = (ent_coef * log_prob - th.min(q_pi, dim=1, keepdim=True)[0]).mean()
            actor_losses.append(actor_loss.item())
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()

            polyak_update(elite_params, self.critic_target.parameters(), self.tau)
            self._period_steps += 1
            if self._period_steps >= self.selection_period:
                self._select()
                elite_params = list(members[self.elite].parameters())

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", np.mean(ent_coefs))
        self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        if ent_coef_losses:
            self.logger.record("train/ent_coef_loss", np.mean(ent_coef_losses))
        self.logger.record("sparsity/critic", self.target_sparsity())
        self.logger.record("sparsity/members_max", max(self.member_sparsities))
        self.logger.record("eaudesac/selections", self.selections)

    def _actor_critic_index(self) -> int:
        if self.actor_critic == "elite":
            return self.elite
        losses = np.asarray(self.cumulated_losses)
        if self._period_steps == 0 or not np.all(np.isfinite(losses)):
            return self.elite
        weights = 1.0 / (losses + 1e-6)
        return int(self._population_rng.choice(len(losses), p=weights / weights.sum()))

    # --- selection (exploitation) and new sparsities (exploration) ---------------------------------
    def _select(self) -> None:
        """End of a period: the lowest cumulated loss wins and becomes the target's source; the
        population is renewed by elitism + tournaments; duplicates get a new, higher sparsity."""
        losses = np.asarray(self.cumulated_losses)
        losses = np.where(np.isfinite(losses), losses, np.inf)
        winner = int(np.argmin(losses))
        rng = self._population_rng
        chosen = [winner]
        for _ in range(self.population_size - 1):
            entrants = rng.choice(self.population_size, size=self.tournament_size, replace=False)
            chosen.append(int(entrants[np.argmin(losses[entrants])]))
        policy = self.policy
        masks = policy.weight_masks
        members = self.critic.members
        # a member chosen once keeps its place; a duplicate takes the place of a member not chosen
        free = [k for k in range(self.population_size) if k not in chosen]
        seen: set[int] = set()
        start, end = self.num_timesteps, self._prune_end_steps()
        period_env_steps = self._env_steps_per_period()
        for parent in chosen:
            if parent not in seen:
                seen.add(parent)
                continue
            slot = free.pop()
            with th.no_grad():
                members[slot].load_state_dict(members[parent].state_dict())
                masks.copy_group_(policy.member_group(slot), policy.member_group(parent))
            sparsity = sample_sparsity(
                rng, self.member_sparsities[parent], start, end, period_env_steps, self.regime, self.max_jump
            )
            masks.update_(policy.member_group(slot), sparsity)
            self.member_sparsities[slot] = masks.sparsity(policy.member_group(slot))
            policy.reset_member_optimizer(slot)
        self.elite = winner
        # the target takes the winner's sparsity: its masked entries are zeroed, and Polyak
        # towards the (equally masked) elite keeps them at zero
        with th.no_grad():
            for (_, target_layer), (_, mask) in zip(
                linear_layers(self.critic_target), masks.pairs(policy.member_group(winner))
            ):
                target_layer.weight.mul_(mask)
        self.sparsity_history.append((self.num_timesteps, self.member_sparsities[winner]))
        self.selections += 1
        self.cumulated_losses = [0.0] * self.population_size
        self._period_steps = 0

    def _prune_end_steps(self) -> int:
        return max(round(env_steps(self.prune_end, self._total_timesteps)), 1)

    def _env_steps_per_period(self) -> int:
        """A period in env steps (the line's time axis is env steps)."""
        env_steps_per_train = max(self.train_freq.frequency, 1) * self.n_envs  # SB3 steps every env at once
        # SB3: gradient_steps=-1 means as many gradient steps as env steps collected
        gradient_steps = env_steps_per_train if self.gradient_steps < 0 else max(self.gradient_steps, 1)
        gradient_steps_per_env_step = gradient_steps / env_steps_per_train
        return max(1, round(self.selection_period / gradient_steps_per_env_step))
