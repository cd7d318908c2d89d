"""P3: wall time of a whole short Prune-B run / the same run as OFE-Big (goal <= 0.5).

Short runs use the short-run theta settings (README, "Short runs"): theta_lr=0.05,
thetas learning from 5% of the budget, rounded at 50%, a prune every 50 steps.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch as th

from benchmarks.common import ENV, report, script_main
from sb3_ofexi import SAC_OFEXi


def run(preset: str, timesteps: int, device: str, **kwargs: Any) -> tuple[float, SAC_OFEXi]:
    model = SAC_OFEXi(
        "MlpPolicy", ENV, preset=preset, learning_starts=200, ofe_pretrain_steps=50, seed=0, device=device, **kwargs
    )
    start = time.perf_counter()
    model.learn(timesteps)
    if device.startswith("cuda"):
        th.cuda.synchronize()
    return time.perf_counter() - start, model


SHORT_RUN = dict(theta_lr=0.05, xi_start=0.05, xi_round=0.5, prune_freq=50)


def measure(
    quick: bool = True, device: str = "cpu", compile_step: bool | str = "auto", timesteps: int | None = None
) -> dict[str, Any]:
    """P3 with ``compile_step`` for both runs (``"auto"``: eager in runs this short)."""
    default_steps, reps = (900, 1) if quick else (20_000, 2)
    timesteps = timesteps or default_steps
    ratios, pruned_model = [], None
    for _ in range(reps):
        t_prune, pruned_model = run("prune-b", timesteps, device, compile_step=compile_step, **SHORT_RUN)
        t_big, big_model = run("ofe-big", timesteps, device, compile_step=compile_step)
        ratios.append(t_prune / t_big)
    p3 = float(np.median(ratios))
    counts, big_counts = pruned_model.param_counts(), big_model.param_counts()
    name = "P3" if compile_step == "auto" else f"P3_compile_{compile_step}"
    report(
        name,
        p3,
        0.5,
        f"{timesteps} steps on {ENV}: prune-b {t_prune:.0f} s vs ofe-big {t_big:.0f} s; "
        f"train params {big_counts['train']:,} -> {counts['train']:,}; compiled-step builds "
        f"{pruned_model.step_runner.builds} vs {big_model.step_runner.builds}",
    )
    return {
        name: p3,
        f"{name}_train_params": counts["train"],
        f"{name}_deploy_params": counts["deploy"],
        f"{name}_builds": pruned_model.step_runner.builds,
        "model": pruned_model,
    }


def main() -> None:
    script_main(measure, __doc__)  # --compile: see benchmarks.run (full mode) for P3 compiled


if __name__ == "__main__":
    main()
