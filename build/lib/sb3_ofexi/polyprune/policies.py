"""SB3's SAC policy with per-weight masks over the actor's and the critic's Linear layers."""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.sac.policies import SACPolicy

from sb3_ofexi.common.masks import WeightMasks, check_mask_distribution, install_mask_hooks, linear_layers


class PolyPruneSACPolicy(SACPolicy):
    """:class:`~stable_baselines3.sac.policies.SACPolicy` plus ``weight_masks``: one boolean mask
    per Linear weight of the critic (both Q-networks, output layers included) and, with
    ``prune_actor``, of the actor (``latent_pi``, ``mu`` and ``log_std``). Biases are never masked
    (rigl's SAC setup). The critic target is not masked: it receives the masked weights through
    Polyak averaging, as in rigl.

    :param prune_actor: mask the actor too (Graesser et al. 2022); ``False`` prunes the critic only
        (the EauDeQN paper's comparison)
    :param mask_distribution: how a network's sparsity is spread over its layers: ``"erk"``
        (Evci et al. 2020), ``"uniform"`` or ``"global"`` (one magnitude threshold per network)
    """

    def __init__(self, *args: Any, prune_actor: bool = True, mask_distribution: str = "erk", **kwargs: Any) -> None:
        check_mask_distribution(mask_distribution)
        if not isinstance(prune_actor, bool):
            raise ValueError(f"prune_actor={prune_actor!r}: accepted: True or False")
        self.prune_actor = prune_actor
        self.mask_distribution = mask_distribution
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        groups = {"critic": linear_layers(self.critic, "critic.")}
        if self.prune_actor:
            groups["actor"] = linear_layers(self.actor, "actor.")
        self.weight_masks = WeightMasks(groups, self.mask_distribution)
        install_mask_hooks(self.critic.optimizer, self.weight_masks, "critic")
        if self.prune_actor:
            install_mask_hooks(self.actor.optimizer, self.weight_masks, "actor")

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(prune_actor=self.prune_actor, mask_distribution=self.mask_distribution)
        return data


MlpPolicy = PolyPruneSACPolicy
