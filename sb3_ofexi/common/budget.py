"""Size budgets: the user names the deployed (or trained) size, nu is steered to reach it.

While the thetas learn, the nu of the networks a budget constrains act as Lagrange
multipliers: each is its preset value times a multiplier ``m`` that dual ascent adapts on
the gap between the expected size (:meth:`~sb3_ofexi.common.policies.OFEXiPolicy.expected_param_counts`,
the parameter count with every width replaced by ``||theta_l||_1``) and a target path::

    m <- clip(m * exp(eta * steps * (expected - target) / target), M_MIN, M_MAX)

The target goes geometrically (the same relative shrink per step all along) from the
initial size at ``xi_start`` to the budget at ``xi_start + REACH * (xi_round - xi_start)``,
and stays there until rounding. ``eta = budget_rate / (env steps of the learning phase)``:
``budget_rate`` is how many e-folds ``m`` can move over the phase at a sustained relative
gap of 1. At rounding, if the rounded networks are still above the budget, the kept units
with the lowest thetas are dropped until they fit (:func:`fit_to_budget`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch as th

#: the budgets a model accepts, and which networks' nu each one steers
BUDGET_KINDS = ("deploy", "train")
#: the target reaches the budget at this fraction of the learning phase ("a little before xi_round")
REACH = 0.9
#: bounds of a multiplier (x the preset's nu)
M_MIN, M_MAX = 1e-3, 1e4


def check_budget(value: Any, name: str) -> int | float | None:
    """``None``, an int > 0 (parameters) or a float in (0, 1) (fraction of the initial size)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"{name}={value!r} is invalid: accepted: None, an int > 0 (parameters as counted by "
            "param_counts()) or a float in (0, 1) (a fraction of the initial size)"
        )
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"{name}={value!r} is invalid: a budget in parameters must be an int > 0")
        return value
    if not 0.0 < value < 1.0 or math.isnan(value):
        raise ValueError(
            f"{name}={value!r} is invalid: a fractional budget must lie in (0, 1); give parameters "
            "as an int (e.g. 20000)"
        )
    return float(value)


def budget_params(value: int | float, initial: int) -> int:
    """The budget in parameters."""
    return value if isinstance(value, int) else int(round(value * initial))


def target_size(initial: float, budget: float, start: float, reach: float, step: float) -> float:
    """The target path: ``initial`` until ``start``, geometric to ``budget`` at ``reach``, then flat."""
    if step <= start:
        return initial
    if step >= reach or reach <= start:
        return budget
    return initial * (budget / initial) ** ((step - start) / (reach - start))


def dual_update(multiplier: float, expected: float, target: float, eta_steps: float) -> float:
    """One multiplicative dual-ascent step, clipped to [M_MIN, M_MAX]."""
    gap = (expected - target) / target
    return float(min(M_MAX, max(M_MIN, multiplier * math.exp(max(-50.0, min(50.0, eta_steps * gap))))))


def fit_to_budget(
    thetas: Sequence[th.Tensor],
    scores: Sequence[th.Tensor],
    keep_one: Sequence[bool],
    size: Callable[[], float],
    budget: int,
) -> int:
    """Zero the kept units (theta == 1) with the lowest ``scores`` until ``size() <= budget``.

    :param thetas: rounded thetas (0/1) of the constrained gates, edited in place
    :param scores: the thetas before rounding, same shapes: lowest dropped first
    :param keep_one: per gate, whether its last unit must stay (an MLP hidden layer)
    :param size: the counted size at the current thetas
    :return: units dropped (all candidates when even that does not fit)
    """
    candidates: list[tuple[float, int, int]] = []
    for g, (theta, score, keep) in enumerate(zip(thetas, scores, keep_one)):
        kept = (theta >= 0.5).nonzero().flatten().tolist()
        if keep and kept:
            kept.remove(max(kept, key=lambda i: float(score[i])))
        candidates += [(float(score[i]), g, i) for i in kept]
    candidates.sort()
    original = [t.detach().clone() for t in thetas]

    def drop(k: int) -> None:
        with th.no_grad():
            for theta, saved in zip(thetas, original):
                theta.copy_(saved)
            for _, g, i in candidates[:k]:
                thetas[g][i] = 0.0

    if size() <= budget:
        return 0
    lo, hi = 1, len(candidates)  # size is non-increasing in k: the smallest k that fits
    drop(hi)
    if size() > budget:
        return hi
    while lo < hi:
        mid = (lo + hi) // 2
        drop(mid)
        if size() <= budget:
            hi = mid
        else:
            lo = mid + 1
    drop(lo)
    return lo
