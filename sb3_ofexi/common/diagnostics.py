"""Why a unit dies: per-layer diagnostics of the thetas while they learn (docs/COMPLEXITY.md).

A theta moves under two forces (eqs. 33/34): the task loss's gradient (L_pred for phi_o and
phi_oa, SAC's critic and actor losses for the RL networks) and the regulariser's push
d(nu C)/dtheta (``nu * coef_l`` per unit with ``regulariser="paper"``, eqs. 28, 29, 32).
Adam then moves it by at most about one learning rate per update. Per layer this records:

* ``task_grad``: mean |dL_task/dtheta| over the layer's units, ``task_grad_signed`` its mean
  (negative: the task wants the units on);
* ``push``: mean d(nu C)/dtheta per unit (positive: the regulariser wants them off);
* ``adam_rate``: mean |m_hat / (sqrt(v_hat) + eps)| of Adam's theta state, the size of the last
  update in learning rates (1.0: moving at the maximum rate);
* ``theta_mean``, ``alive`` (units with theta >= theta_tol) and ``undecided`` (the share of the
  alive units with theta_tol <= theta < 0.9: still neither on nor off).

Nothing here adds a backward pass over a minibatch: the task gradient is the theta gradient the
step left in ``.grad`` minus the push, which comes from the regulariser alone (a graph over the
thetas, once per window). Gradients are averaged over the last ``window`` gradient steps before
every ``every`` env steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch as th

from sb3_ofexi.common.xi import XiGate

#: a theta at or above this (and alive) counts as decided "on"; the issue's criterion
DECIDED_ON = 0.9


def theta_stats(gates: dict[str, XiGate], theta_tol: float) -> dict[str, dict[str, float]]:
    """Per layer: units, theta_mean, alive (theta >= theta_tol), undecided share among the alive."""
    stats = {}
    for name, gate in gates.items():
        theta = gate.theta.detach()
        alive = theta >= theta_tol
        n_alive = int(alive.sum())
        undecided = int((alive & (theta < DECIDED_ON)).sum())
        stats[name] = {
            "units": gate.n_units,
            "theta_mean": float(theta.mean()) if gate.n_units else float("nan"),
            "alive": n_alive,
            "undecided": undecided / n_alive if n_alive else 0.0,
        }
    return stats


def network_of(layer: str) -> str:
    """``phi_o[2]`` -> ``phi_o``, ``critic1[0]`` -> ``critic``."""
    net = layer.split("[")[0]
    return "critic" if net.startswith("critic") else net


def undecided_by_network(stats: dict[str, dict[str, float]]) -> dict[str, float]:
    """Share of the alive thetas that are undecided, per network (phi_o, phi_oa, actor, critic)."""
    alive: dict[str, float] = {}
    undecided: dict[str, float] = {}
    for layer, row in stats.items():
        net = network_of(layer)
        alive[net] = alive.get(net, 0) + row["alive"]
        undecided[net] = undecided.get(net, 0) + row["undecided"] * row["alive"]
    return {net: undecided[net] / alive[net] if alive[net] else 0.0 for net in alive}


def adam_rate(optimizer: th.optim.Optimizer, param: th.Tensor) -> float:
    """Mean |m_hat / (sqrt(v_hat) + eps)| of Adam's state for ``param``: the last update over the
    learning rate (NaN for an optimizer without Adam's moments, or before its first step)."""
    state = optimizer.state.get(param, {})
    if "exp_avg" not in state or "exp_avg_sq" not in state or param.numel() == 0:
        return float("nan")
    group = next(g for g in optimizer.param_groups if any(p is param for p in g["params"]))
    beta1, beta2 = group["betas"]
    step = float(state["step"])
    if step < 1:
        return float("nan")
    m_hat = state["exp_avg"] / (1 - beta1**step)
    v_hat = state["exp_avg_sq"] / (1 - beta2**step)
    return float((m_hat / (v_hat.sqrt() + group["eps"])).abs().mean())


class ThetaDiagnostics:
    """Per-layer theta diagnostics of a learning phase, every ``every`` env steps.

    :param gates: the model's gates by layer name (``phi_o[0]``, ..., ``critic1[1]``), called
        each time (pruning changes widths, not the gate objects)
    :param optimizers: which optimizer updates each layer's theta
    :param push: d(nu C)/dtheta per layer, from the regulariser alone (see the module docstring)
    """

    def __init__(
        self,
        gates: Callable[[], dict[str, XiGate]],
        optimizers: Callable[[], dict[str, th.optim.Optimizer]],
        push: Callable[[], dict[str, th.Tensor]],
        every: int,
        window: int = 100,
    ) -> None:
        if every < 1:
            raise ValueError(f"theta_diagnostics_freq={every}: accepted: an int >= 1 (or 0 to switch them off)")
        self.gates, self.optimizers, self.push_fn = gates, optimizers, push
        self.every, self.window = every, min(window, every)
        self._push: dict[str, th.Tensor] = {}
        self._sums: dict[str, list[th.Tensor]] = {}
        self._counts: dict[str, int] = {}  # steps that updated each layer's thetas
        self._steps = 0
        self._flush_at: int | None = None

    def gathering(self, num_timesteps: int) -> bool:
        """Whether this env step lies in a window: the last ``window`` env steps up to the next
        multiple of ``every`` (found again after a resume)."""
        if self._flush_at is None:
            self._flush_at = -(-num_timesteps // self.every) * self.every
        return num_timesteps >= self._flush_at - self.window

    def flush_due(self, num_timesteps: int) -> bool:
        return self._flush_at is not None and num_timesteps >= self._flush_at

    def accumulate(self, skip: tuple[str, ...] = ()) -> None:
        """After a gradient step: add each layer's task gradient (``.grad`` minus the push).

        :param skip: networks (``network_of``'s names) not updated by this step, whose ``.grad``
            is the previous update's (TD3's actor between its delayed updates)
        """
        for name, gate in self.gates().items():
            grad = gate.theta.grad
            if grad is None or gate.n_units == 0 or network_of(name) in skip:
                continue
            push = self._push.get(name)
            if push is None or push.shape != grad.shape:  # a new window, or a prune changed the width
                self._push = {k: v.detach() for k, v in self.push_fn().items()}
                push = self._push[name]
            task = grad - push
            sums = self._sums.setdefault(name, [th.zeros((), device=grad.device), th.zeros((), device=grad.device)])
            sums[0] += task.abs().mean()
            sums[1] += task.mean()
            self._counts[name] = self._counts.get(name, 0) + 1
        self._steps += 1

    def flush(self, num_timesteps: int, n_updates: int, theta_tol: float) -> list[dict[str, Any]]:
        """The rows of this window (one per layer), then a fresh window; empty if nothing was gathered."""
        if not self._steps:
            self._flush_at = (num_timesteps // self.every + 1) * self.every
            return []
        stats = theta_stats(self.gates(), theta_tol)
        optimizers = self.optimizers()
        rows = []
        for name, gate in self.gates().items():
            sums = self._sums.get(name)
            count = self._counts.get(name, 0)
            push = self._push.get(name)
            rows.append(
                {
                    "timesteps": num_timesteps,
                    "updates": n_updates,
                    "layer": name,
                    **stats[name],
                    "task_grad": float(sums[0]) / count if sums else float("nan"),
                    "task_grad_signed": float(sums[1]) / count if sums else float("nan"),
                    "push": float(push.mean()) if push is not None and push.numel() else float("nan"),
                    "adam_rate": adam_rate(optimizers[name], gate.theta),
                }
            )
        self._sums, self._push, self._counts, self._steps = {}, {}, {}, 0
        self._flush_at = (num_timesteps // self.every + 1) * self.every
        return rows
