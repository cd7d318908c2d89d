"""Unstructured (per-weight) magnitude masks, the machinery of the peer methods.

PolyPruneSAC and EauDeSAC prune individual weights: a layer's matrix keeps its shape and its
pruned entries are held at exactly zero. Their parameter counts fall; the matrices stay dense,
so on ordinary hardware they buy no speed -- which the report measures next to OFEXiNet's
structural pruning.

Masks are boolean buffers of a :class:`WeightMasks` module, so they travel with the policy's
``state_dict`` (save / load / checkpoints) and its device. A masked weight stays zero because
(i) its gradient is masked before every optimizer step, (ii) its Adam moments are zeroed when
the mask changes, so Adam's update ``m / (sqrt(v) + eps)`` is exactly 0, and (iii) the weight is
multiplied by its mask after every optimizer step (a guarantee that costs one multiply).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch as th
from torch import nn

#: how per-layer sparsities are chosen for a network-wide sparsity s
DISTRIBUTIONS = ("erk", "uniform", "global")


def linear_layers(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Linear]]:
    """Every ``nn.Linear`` of ``module``, with its dotted name (the masks' keys)."""
    return [(f"{prefix}{name}", layer) for name, layer in module.named_modules() if isinstance(layer, nn.Linear)]


def erk_densities(shapes: Sequence[tuple[int, int]], sparsity: float, power: float = 1.0) -> list[float]:
    """Per-layer densities of Erdős–Rényi(-Kernel) (Evci et al. 2020, eq. in section 3).

    A layer of ``n_out x n_in`` gets density ``eps * ((n_in + n_out) / (n_in * n_out)) ** power``
    with one ``eps`` chosen so that the network keeps ``1 - sparsity`` of its weights. A layer whose
    density would exceed 1 is kept dense and ``eps`` is solved again for the others (as rigl's
    ``get_sparsities_erdos_renyi``). Small layers (output heads) end up denser than large ones.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity={sparsity}: accepted: a number in [0, 1)")
    sizes = [n_out * n_in for n_out, n_in in shapes]
    raw = [((n_in + n_out) / (n_in * n_out)) ** power for n_out, n_in in shapes]
    dense: set[int] = set()
    while True:
        kept = (1.0 - sparsity) * sum(sizes) - sum(sizes[i] for i in dense)
        divisor = sum(raw[i] * sizes[i] for i in range(len(sizes)) if i not in dense)
        eps = kept / divisor if divisor > 0 else 0.0
        over = [i for i in range(len(sizes)) if i not in dense and eps * raw[i] > 1.0]
        if not over:
            return [1.0 if i in dense else eps * raw[i] for i in range(len(sizes))]
        dense.add(max(over, key=lambda i: raw[i]))


def layer_densities(shapes: Sequence[tuple[int, int]], sparsity: float, distribution: str) -> list[float] | None:
    """Per-layer densities for ``distribution``; ``None`` for ``"global"`` (one magnitude threshold)."""
    if distribution == "erk":
        return erk_densities(shapes, sparsity)
    if distribution == "uniform":
        return [1.0 - sparsity] * len(shapes)
    if distribution == "global":
        return None
    raise ValueError(f"distribution={distribution!r}: accepted: {', '.join(DISTRIBUTIONS)}")


def _top_k_mask(scores: th.Tensor, keep: int) -> th.Tensor:
    """A boolean mask that keeps the ``keep`` largest scores (ties broken by position)."""
    mask = th.zeros(scores.numel(), dtype=th.bool, device=scores.device)
    if keep > 0:
        mask[th.topk(scores.flatten(), keep, sorted=False).indices] = True
    return mask.view_as(scores)


class WeightMasks(nn.Module):
    """Boolean masks over the weights of some ``nn.Linear`` layers (biases are never masked).

    Groups (e.g. ``"actor"``, ``"critic"``) reach their sparsity separately: each network keeps
    ``1 - s`` of its own weights, distributed over its layers by ``distribution``.
    """

    def __init__(self, groups: dict[str, list[tuple[str, nn.Linear]]], distribution: str = "erk") -> None:
        super().__init__()
        layer_densities([(1, 1)], 0.0, distribution)  # checks the name
        self.distribution = distribution
        self.groups = {group: [name for name, _ in layers] for group, layers in groups.items()}
        # plain references, not submodules: the layers belong to the policy, and must not be
        # saved twice in its state_dict
        self._layers: dict[str, nn.Linear] = {}
        for layers in groups.values():
            for name, layer in layers:
                self._layers[name] = layer
                self.register_buffer(self._key(name), th.ones_like(layer.weight, dtype=th.bool))

    @staticmethod
    def _key(name: str) -> str:
        return name.replace(".", "__")

    def mask(self, name: str) -> th.Tensor:
        return getattr(self, self._key(name))

    def pairs(self, group: str | None = None) -> Iterable[tuple[nn.Linear, th.Tensor]]:
        names = self.groups[group] if group is not None else list(self._layers)
        return ((self._layers[name], self.mask(name)) for name in names)

    # --- the masks ----------------------------------------------------------------------------
    @th.no_grad()
    def update_(self, group: str, sparsity: float) -> list[nn.Parameter]:
        """Magnitude pruning of ``group`` to ``sparsity``: keep the largest ``|w|`` per layer (or
        network-wide for ``"global"``); masked weights are zeroed. Masks only shrink: a weight
        pruned once stays pruned (its magnitude is 0). Returns the weights whose mask changed."""
        layers = list(self.pairs(group))
        shapes = [tuple(layer.weight.shape) for layer, _ in layers]
        densities = layer_densities(shapes, sparsity, self.distribution)  # type: ignore[arg-type]
        if densities is None:  # one threshold over the whole group
            scores = th.cat([(layer.weight.abs() * mask).flatten() for layer, mask in layers])
            keep = _top_k_mask(scores, round((1.0 - sparsity) * scores.numel()))
            new_masks = list(th.split(keep, [mask.numel() for _, mask in layers]))
            new_masks = [m.view_as(mask) for m, (_, mask) in zip(new_masks, layers)]
        else:
            new_masks = []
            for (layer, mask), density in zip(layers, densities):
                scores = layer.weight.abs() * mask  # a pruned weight never comes back
                new_masks.append(_top_k_mask(scores, round(density * mask.numel())))
        changed: list[nn.Parameter] = []
        for (layer, mask), new in zip(layers, new_masks):
            new &= mask
            if not th.equal(new, mask):
                mask.copy_(new)
                changed.append(layer.weight)  # type: ignore[arg-type]  # a Parameter
            layer.weight.mul_(mask)
        return changed

    @th.no_grad()
    def copy_group_(self, group: str, source: str) -> None:
        """Masks of ``source`` into ``group`` (two networks of the same layout)."""
        for (_, mine), (_, theirs) in zip(self.pairs(group), self.pairs(source), strict=True):
            mine.copy_(theirs)

    @th.no_grad()
    def apply_(self, group: str | None = None) -> None:
        """Zero the masked weights (one foreach call: this runs after every optimizer step)."""
        pairs = list(self.pairs(group))
        if pairs:
            th._foreach_mul_([layer.weight for layer, _ in pairs], [mask for _, mask in pairs])

    @th.no_grad()
    def mask_grads_(self, group: str | None = None) -> None:
        """Zero the gradients of masked weights (one foreach call, before every optimizer step)."""
        pairs = [(layer.weight.grad, mask) for layer, mask in self.pairs(group) if layer.weight.grad is not None]
        if pairs:
            th._foreach_mul_([grad for grad, _ in pairs], [mask for _, mask in pairs])

    # --- counting ------------------------------------------------------------------------------
    def kept(self, group: str | None = None) -> int:
        """Weights kept (mask ones) in ``group`` (all groups when None)."""
        return int(sum(int(mask.sum()) for _, mask in self.pairs(group)))

    def total(self, group: str | None = None) -> int:
        return int(sum(mask.numel() for _, mask in self.pairs(group)))

    def sparsity(self, group: str | None = None) -> float:
        total = self.total(group)
        return 1.0 - self.kept(group) / total if total else 0.0

    def pruned(self, module: nn.Module) -> int:
        """How many of ``module``'s weights are masked (0 for a module without masked layers)."""
        ids = {id(p) for p in module.parameters()}
        return int(sum(mask.numel() - int(mask.sum()) for layer, mask in self.pairs() if id(layer.weight) in ids))


def zero_adam_moments_(optimizer: th.optim.Optimizer, masks: WeightMasks, weights: list[nn.Parameter]) -> None:
    """Zero Adam's moments of the masked entries of ``weights``, so that Adam's next updates of
    them are exactly 0 (``m = v = 0`` and a masked gradient keep them there)."""
    by_weight = {id(layer.weight): mask for layer, mask in masks.pairs()}
    with th.no_grad():
        for weight in weights:
            state = optimizer.state.get(weight)
            if not state:
                continue
            for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                if key in state:
                    state[key].mul_(by_weight[id(weight)])


def install_mask_hooks(optimizer: th.optim.Optimizer, masks: WeightMasks, group: str | None) -> None:
    """Mask the gradients before every step of ``optimizer`` and the weights after it."""
    optimizer.register_step_pre_hook(lambda *_: masks.mask_grads_(group))
    optimizer.register_step_post_hook(lambda *_: masks.apply_(group))


def cubic_sparsity(step: int, final: float, start: int, end: int) -> float:
    """Zhu & Gupta (2018)'s schedule: ``s_t = s_F (1 - (1 - (t - t_s) / (t_e - t_s)) ** 3)``,
    0 before ``t_s`` and ``s_F`` after ``t_e``."""
    if step <= start:
        return 0.0
    if step >= end:
        return final
    return final * (1.0 - (1.0 - (step - start) / (end - start)) ** 3)


def check_mask_distribution(value: Any) -> str:
    """``mask_distribution``: how a network's sparsity is spread over its layers."""
    if value not in DISTRIBUTIONS:
        raise ValueError(f"mask_distribution={value!r}: accepted: {', '.join(DISTRIBUTIONS)}")
    return value
