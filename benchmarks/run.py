"""Run every benchmark; ``python -m benchmarks.run --quick --json out.json``.

Writes ``{"P1": x, "P2": x, "P3": x, "P4": x, "P4_sac": x, "P5_ofe": x, "P6": x, "P7": x, ...}``. ``--quick`` is sized
for a 2-core CPU (a few minutes); the full mode is meant for a GPU machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch as th

from benchmarks import compiled_step, env_steps, latency, profile_train, train_step, whole_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small budgets for a CPU machine")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--device", default="cuda" if th.cuda.is_available() else "cpu")
    args = parser.parse_args()
    th.manual_seed(0)
    start = time.perf_counter()
    results: dict[str, object] = {}
    results.update(train_step.measure(args.quick, args.device))
    p3 = whole_run.measure(args.quick, args.device)
    pruned_model = p3.pop("model")
    results.update(p3)
    results.update(latency.measure(args.quick, pruned_model))  # latency is a CPU figure
    if args.quick:
        print(
            "P3_compile_True: full mode only (on 2 CPU cores every shape-changing prune of the short run "
            "rebuilds the compiled step, tens of seconds each; see docs/BENCHMARKS.md)"
        )
    else:
        compiled = whole_run.measure(args.quick, args.device, compile_step=True)
        compiled.pop("model")
        results.update(compiled)
    results.update(env_steps.measure(args.quick, args.device))
    results.update(compiled_step.measure(args.quick, args.device))
    results.update(profile_train.measure(args.quick, args.device))
    results["meta"] = {
        "quick": args.quick,
        "device": args.device,
        "torch": th.__version__,
        "threads": th.get_num_threads(),
        "machine": platform.platform(),
        "processor": platform.processor(),
        "seconds": time.perf_counter() - start,
    }
    print(f"total {results['meta']['seconds']:.0f} s")  # type: ignore[index]
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
