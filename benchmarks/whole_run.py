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


def measure(quick: bool = True, device: str = "cpu") -> dict[str, Any]:
    timesteps, reps = (900, 1) if quick else (20_000, 2)
    ratios, pruned_model = [], None
    for _ in range(reps):
        t_prune, pruned_model = run("prune-b", timesteps, device, **SHORT_RUN)
        t_big, big_model = run("ofe-big", timesteps, device)
        ratios.append(t_prune / t_big)
    p3 = float(np.median(ratios))
    counts, big_counts = pruned_model.param_counts(), big_model.param_counts()
    report("P3", p3, 0.5, f"{timesteps} steps on {ENV}: prune-b {t_prune:.0f} s vs ofe-big {t_big:.0f} s; "
           f"train params {big_counts['train']:,} -> {counts['train']:,}")  # fmt: skip
    return {"P3": p3, "P3_train_params": counts["train"], "P3_deploy_params": counts["deploy"], "model": pruned_model}


def main() -> None:
    script_main(measure, __doc__)


if __name__ == "__main__":
    main()
