"""SB3's SAC policy with a population of masked online critics and one shared target critic."""

from __future__ import annotations

from typing import Any

import torch as th
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.sac.policies import SACPolicy
from torch import nn

from sb3_ofexi.common.masks import WeightMasks, check_mask_distribution, install_mask_hooks, linear_layers
from sb3_ofexi.common.modules import ModuleList


class CriticPopulation(nn.Module):
    """K online critics (each SB3's twin-Q ``ContinuousCritic``) trained side by side."""

    members: ModuleList[ContinuousCritic]
    optimizer: th.optim.Optimizer

    def __init__(self, members: list[ContinuousCritic]) -> None:
        super().__init__()
        self.members = ModuleList(members)

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, obs: th.Tensor, actions: th.Tensor) -> list[tuple[th.Tensor, ...]]:
        return [member(obs, actions) for member in self.members]

    def set_training_mode(self, mode: bool) -> None:
        self.train(mode)


class EauDeSACPolicy(SACPolicy):
    """:class:`~stable_baselines3.sac.policies.SACPolicy` whose ``critic`` is a
    :class:`CriticPopulation` of ``population_size`` members, each with per-weight masks over its
    Linear weights (output layers included, biases never), and one ``critic_target``. The actor
    is dense (EauDeSAC prunes the critic only). One Adam optimizer holds the whole population;
    a member's state is reset when it is replaced (:meth:`reset_member_optimizer`).

    :param population_size: K, the number of online critics
    :param mask_distribution: how a member's sparsity is spread over its layers (``"erk"``,
        ``"uniform"`` or ``"global"``)
    """

    critic: CriticPopulation  # type: ignore[assignment]

    def __init__(self, *args: Any, population_size: int = 5, mask_distribution: str = "erk", **kwargs: Any) -> None:
        if isinstance(population_size, bool) or not isinstance(population_size, int) or population_size < 2:
            raise ValueError(f"population_size={population_size!r}: accepted: an int >= 2")
        check_mask_distribution(mask_distribution)
        if kwargs.get("share_features_extractor"):
            raise ValueError(
                "share_features_extractor=True: accepted: False (each online critic has its own "
                "input; the actor's features must not be trained by K critic losses)"
            )
        self.population_size = population_size
        self.mask_distribution = mask_distribution
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        self.actor = self.make_actor()
        self.actor.optimizer = self.optimizer_class(self.actor.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]
        members = [self.make_critic(features_extractor=None) for _ in range(self.population_size)]
        for member in members[1:]:  # the population starts as copies: one network, K sparsity levels
            member.load_state_dict(members[0].state_dict())
        self.critic = CriticPopulation(members)
        self.critic_target = self.make_critic(features_extractor=None)
        self.critic_target.load_state_dict(members[0].state_dict())
        self.critic.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.critic.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )
        self.critic_target.set_training_mode(False)
        groups = {
            self.member_group(k): linear_layers(member, f"critic.members.{k}.") for k, member in enumerate(members)
        }
        self.weight_masks = WeightMasks(groups, self.mask_distribution)
        install_mask_hooks(self.critic.optimizer, self.weight_masks, None)

    @staticmethod
    def member_group(k: int) -> str:
        return f"member{k}"

    def reset_member_optimizer(self, k: int) -> None:
        """Forget Adam's state of member ``k`` (Asadi et al. 2023; the EauDeQN paper's appendix)."""
        for param in self.critic.members[k].parameters():
            self.critic.optimizer.state.pop(param, None)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(population_size=self.population_size, mask_distribution=self.mask_distribution)
        return data


MlpPolicy = EauDeSACPolicy
