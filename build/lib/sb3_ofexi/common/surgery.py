"""Structural pruning: one mechanism for every module (SPEC section 6).

A prunable module removes its own units given a keep-mask and tells its consumers
which of their input features survive; consumers slice their input columns. All the
slicing goes through :class:`Surgery`, which edits tensors in place (``.data``, so
parameters keep their identity and stay registered in their optimizers) and records
each edit so the optimizers' state (Adam moments) can be sliced the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch as th
from torch import nn


def make_linear(in_features: int, out_features: int) -> nn.Linear:
    """``nn.Linear`` that may be empty: a layer pruned to zero units is rebuilt on load."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors is a no-op")
        return nn.Linear(in_features, out_features)


class Surgery:
    """Records index selections applied to parameters and buffers.

    Run it with no autograd graph alive that involves the tensors it edits (SAC_OFEXi prunes
    between gradient steps): autograd caches a leaf's shape in its gradient accumulator for as
    long as a graph holds it, and a backward pass through that graph after a prune fails.
    """

    def __init__(self) -> None:
        # id(tensor) -> (tensor, [(shape_before, dim, index), ...]) in application order
        self._edits: dict[int, tuple[th.Tensor, list[tuple[th.Size, int, th.Tensor]]]] = {}
        #: keep-masks over named feature vectors (e.g. "z_o", "z_oa") before surgery
        self.feature_masks: dict[str, th.Tensor] = {}

    @staticmethod
    def _index(keep: th.Tensor) -> th.Tensor:
        # stays on the mask's device; no host copy of the data
        return keep.nonzero(as_tuple=False).flatten()

    def select_(self, tensor: th.Tensor, dim: int, keep: th.Tensor) -> None:
        """Keep the entries ``keep`` (bool mask) of ``tensor`` along ``dim``, in place."""
        if keep.dtype != th.bool or keep.dim() != 1 or keep.shape[0] != tensor.shape[dim]:
            raise ValueError(
                f"keep-mask of shape {tuple(keep.shape)} ({keep.dtype}) does not match dim {dim} "
                f"of a tensor of shape {tuple(tensor.shape)}"
            )
        if bool(keep.all()):
            return
        index = self._index(keep.to(tensor.device))
        shape_before = tensor.shape
        tensor.data = tensor.data.index_select(dim, index)
        if isinstance(tensor, nn.Parameter) and tensor.grad is not None:
            tensor.grad = None
        self._edits.setdefault(id(tensor), (tensor, []))[1].append((shape_before, dim, index))

    def select_linear_inputs_(self, linear: nn.Linear, keep: th.Tensor) -> None:
        self.select_(linear.weight, 1, keep)
        linear.in_features = linear.weight.shape[1]

    def select_linear_outputs_(self, linear: nn.Linear, keep: th.Tensor) -> None:
        self.select_(linear.weight, 0, keep)
        if linear.bias is not None:
            self.select_(linear.bias, 0, keep)
        linear.out_features = linear.weight.shape[0]

    def select_batch_norm_(self, bn: nn.BatchNorm1d, keep: th.Tensor) -> None:
        for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
            if tensor is not None:
                self.select_(tensor, 0, keep)
        bn.num_features = int(bn.weight.shape[0]) if bn.weight is not None else int(keep.sum())

    @property
    def changed(self) -> bool:
        return bool(self._edits)

    def slice_optimizer_(self, optimizer: th.optim.Optimizer) -> None:
        """Slice the per-parameter state (e.g. Adam's exp_avg / exp_avg_sq) like the parameters.

        Surviving entries keep their moments; scalar state (Adam's ``step``) is untouched.
        """
        for param, state in optimizer.state.items():
            entry = self._edits.get(id(param))
            if entry is None or entry[0] is not param:
                continue
            for key, value in state.items():
                if not th.is_tensor(value):
                    continue
                for shape_before, dim, index in entry[1]:
                    if value.shape != shape_before:
                        break
                    value = value.index_select(dim, index.to(value.device))
                state[key] = value

    def slice_optimizers_(self, optimizers: Iterable[th.optim.Optimizer | None]) -> None:
        for optimizer in optimizers:
            if optimizer is not None:
                self.slice_optimizer_(optimizer)
