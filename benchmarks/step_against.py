"""P8: the gradient step of this checkout against another commit's (a refactor must not slow it).

A small prune-b model while its thetas learn (2 blocks of 8 units, 16x16 SAC nets, batch 32, one
thread, eager step), where Python overhead weighs most: ms per gradient step, best of 5 blocks of
200 steps, in a fresh process per measurement, the two commits in turn (A B A B ...); the ratio
pair by pair. ``python -m benchmarks.step_against --commit 08126dd [--pairs 5]``
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: one measurement: runs in a fresh interpreter with PYTHONPATH set to the checkout measured
PROBE = """
import time
import torch as th
th.set_num_threads(1)
from sb3_ofexi import SAC_OFEXi
model = SAC_OFEXi("MlpPolicy", "Pendulum-v1", preset="prune-b", ofe_layers=2, ofe_units=8,
    policy_kwargs={"net_arch": [16, 16]}, learning_starts=64, batch_size=32, xi_start=100, xi_round=100_000,
    prune_freq=0, theta_lr=0.01, compile_step=False, theta_diagnostics_freq=0, seed=0, device="cpu")
model.learn(300)
model.train(20, 32)
times = []
for _ in range(5):
    start = time.perf_counter()
    model.train(200, 32)
    times.append((time.perf_counter() - start) / 200 * 1e3)
print(min(times))
"""


def probe(source: pathlib.Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(source), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commit", required=True, help="the commit to compare against (B)")
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        other = pathlib.Path(tmp) / "other"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(other)], check=True)
        subprocess.run(["git", "-C", str(other), "checkout", "-q", args.commit], check=True)
        ratios = []
        for i in range(args.pairs):
            here, there = probe(ROOT), probe(other)
            ratios.append(here / there)
            print(
                f"pair {i + 1}: this checkout {here:.3f} ms/step, {args.commit} {there:.3f} ms/step, ratio {ratios[-1]:.3f}"
            )
    print(f"P8 ratio (this checkout / {args.commit}), median of {args.pairs} pairs: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
