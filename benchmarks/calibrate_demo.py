"""Is the small-task prune-b entry self-consistent? (docs/CALIBRATION.md, "The demo's entry")

Runs prune-b on a small task (3 seeds, as ``make demo``) with the YAML entry plus overrides, and
checks the criterion fixed before any run:

* decided: at most 10% of the alive thetas of every network (phi_o, phi_oa, actor, critic) are
  undecided (theta_tol <= theta < 0.9) just before rounding, in every seed;
* no collapse after rounding: the mean evaluation after rounding is not worse than the mean of
  the last three before it by more than ``--collapse`` (100 on Pendulum, whose returns span
  about -1,500 to -100), and no network is pruned to < 5% of its units.

    python -m benchmarks.calibrate_demo --out runs/calib_demo/today
    python -m benchmarks.calibrate_demo --out runs/calib_demo/lr1e-2 --set theta_lr=0.01 --timesteps 10000

Prints one row per seed and the verdict; the runs are ordinary run folders (``sb3-ofexi report``).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from sb3_ofexi.common.diagnostics import DECIDED_ON
from sb3_ofexi.harness.cli import _key_value
from sb3_ofexi.harness.runs import RunSpec, rounding_step
from sb3_ofexi.harness.sweep import run_sweep

MAX_UNDECIDED = 0.10
MIN_UNITS_SHARE = 0.05
NETS = ("phi_o", "phi_oa", "actor", "critic")


def check(summary: dict, collapse: float) -> dict:
    """The criterion's numbers for one finished run."""
    undecided = summary["xi_record"]["before_rounding"]["undecided"]
    start, end = summary["history"][0], summary["history"][-1]
    units = {net: (end[f"units_{net}"], start[f"units_{net}"]) for net in NETS}
    steps, returns = np.asarray(summary["eval_timesteps"]), np.asarray(summary["eval_returns"])
    rounded = rounding_step(summary)
    before, after = returns[steps <= rounded][-3:], returns[steps > rounded]
    drop = float(before.mean() - after.mean()) if len(before) and len(after) else float("nan")
    return {
        "seed": summary["seed"],
        "undecided": undecided,
        "units": units,
        "score": summary["score"],
        "final": summary["final_return"],
        "before": float(before.mean()),
        "after": float(after.mean()),
        "decided": max(undecided.values()) <= MAX_UNDECIDED,
        "collapsed": drop > collapse or any(e < MIN_UNITS_SHARE * s for e, s in units.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--timesteps", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--method", default="prune-b")
    parser.add_argument("--hyperparams", help="folder of YAML files (default: the package's)")
    parser.add_argument("--set", type=_key_value, action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--collapse", type=float, default=100.0, help="largest allowed fall of the mean return")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    specs = [
        RunSpec(
            args.method,
            args.env,
            seed,
            args.timesteps,
            args.out,
            eval_episodes=args.eval_episodes,
            hyperparams_dir=args.hyperparams,
            overrides=dict(args.set),
            measure_speed=False,
            threads=1,
        )
        for seed in range(args.seeds)
    ]
    results = run_sweep(specs, jobs=args.jobs)
    failed = [r for r in results if r.get("status") != "done"]
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed: see failed.json under {args.out}")
    rows = [check(json.loads((spec.run_dir / "summary.json").read_text()), args.collapse) for spec in specs]
    print(
        f"{args.env} {args.method} {args.timesteps:,} steps, overrides {dict(args.set)}; undecided: alive thetas "
        f"in [theta_tol, {DECIDED_ON}) just before rounding"
    )
    print(
        "| seed | undecided phi_o / phi_oa / actor / critic | units left (of start) | mean eval before -> after "
        "rounding | score | final | decided | collapse |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        undecided = " / ".join(f"{100 * row['undecided'][net]:.0f}%" for net in NETS)
        units = ", ".join(f"{net} {e}/{s}" for net, (e, s) in row["units"].items())
        print(
            f"| {row['seed']} | {undecided} | {units} | {row['before']:.1f} -> {row['after']:.1f} | "
            f"{row['score']:.1f} | {row['final']:.1f} | {'yes' if row['decided'] else 'no'} | "
            f"{'yes' if row['collapsed'] else 'no'} |"
        )
    ok = all(r["decided"] and not r["collapsed"] for r in rows)
    print(
        f"criterion {'met' if ok else 'NOT met'}: every network <= {100 * MAX_UNDECIDED:.0f}% undecided in "
        f"every seed, no collapse after rounding"
    )


if __name__ == "__main__":
    main()
