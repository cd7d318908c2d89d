"""Shared helpers: models with a filled replay buffer, interleaved timing."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch as th

from sb3_ofexi import SAC_OFEXi

ENV = "Hopper-v5"
BATCH = 256


def filled_model(n_random: int = 1000, env: str = ENV, device: str = "cpu", **kwargs: Any) -> SAC_OFEXi:
    """A SAC_OFEXi whose buffer holds ``n_random`` random-action steps and no update was made yet."""
    config: dict[str, Any] = dict(learning_starts=n_random, ofe_pretrain_steps=0, seed=0, device=device)
    config.update(kwargs)
    model = SAC_OFEXi("MlpPolicy", env, **config)
    model.learn(n_random)  # learning_starts == budget: collection only
    model._ofe_pretrained = True
    return model


def set_phase(model: SAC_OFEXi, progress: float) -> None:
    """Put the theta schedule at ``progress`` (fraction of the budget) for direct train() calls."""
    model._current_progress_remaining = 1.0 - progress
    model.theta_control.update_phase()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        th.cuda.synchronize()


def interleaved_ratio(
    run_a: Callable[[], Any], run_b: Callable[[], Any], repetitions: int, device: str = "cpu"
) -> tuple[float, float, float]:
    """Median over repetitions of time(a) / time(b), a and b alternating so machine noise cancels.

    :return: (median ratio, median seconds of a, median seconds of b)
    """
    ratios, times_a, times_b = [], [], []
    for _ in range(repetitions):
        sync(device)
        start = time.perf_counter()
        run_a()
        sync(device)
        mid = time.perf_counter()
        run_b()
        sync(device)
        end = time.perf_counter()
        times_a.append(mid - start)
        times_b.append(end - mid)
        ratios.append((mid - start) / (end - mid))
    return float(np.median(ratios)), float(np.median(times_a)), float(np.median(times_b))


def report(name: str, ratio: float, goal: float | None, detail: str) -> None:
    verdict = "" if goal is None else f"  (goal <= {goal:.2f}: {'met' if ratio <= goal else 'NOT met'})"
    print(f"{name} = {ratio:.3f}{verdict}  -- {detail}")


def script_main(measure: Callable[..., Any], doc: str | None) -> None:
    """Command line of a single benchmark script: ``--quick`` and ``--device``."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--quick", action="store_true", help="small budgets for a CPU machine")
    parser.add_argument("--device", default="cuda" if th.cuda.is_available() else "cpu")
    args = parser.parse_args()
    measure(args.quick, args.device)
