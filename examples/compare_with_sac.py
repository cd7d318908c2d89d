"""Compare SAC_OFEXi with stock SB3 SAC from Python: same env, same seeds, same evaluation.

Equivalent to ``sb3-ofexi compare --env Pendulum-v1 --methods sac,sac-big,ofe,prune-b,prune-c --seeds 3
--timesteps 6000 --jobs 2 --out runs/compare``.
Writes runs/compare/report.md with Tables 3-4 and the plots.
"""

from __future__ import annotations

from sb3_ofexi.harness.report import build_report
from sb3_ofexi.harness.runs import RunSpec
from sb3_ofexi.harness.sweep import run_sweep

if __name__ == "__main__":
    methods = ["sac", "sac-big", "ofe", "prune-b", "prune-c"]
    specs = [
        RunSpec(method, "Pendulum-v1", seed, timesteps=6000, out_dir="runs/compare")
        for method in methods
        for seed in range(3)
    ]
    run_sweep(specs, jobs=2)  # re-running skips finished runs and resumes interrupted ones
    print(build_report("runs/compare").read_text())
