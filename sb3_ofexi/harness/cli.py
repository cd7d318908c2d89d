"""The ``sb3-ofexi`` command line: train, compare, report, results, measure, export."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from typing import Any

import yaml


def _run_options(parser: argparse.ArgumentParser, env_required: bool = True) -> None:
    parser.add_argument("--env", required=env_required, help="Gymnasium id, e.g. Pendulum-v1 or Hopper-v5")
    parser.add_argument("--timesteps", type=int, help="env steps per run (default: the YAML's n_timesteps)")
    parser.add_argument(
        "--eval-freq",
        type=int,
        help="evaluate every N env steps (default: 10,000 as in the paper, or timesteps / 20 if less)",
    )
    parser.add_argument(
        "--eval-episodes", type=int, default=10, help="deterministic episodes per evaluation (default: 10)"
    )
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument(
        "--hyperparams", help="folder of rl-zoo3 YAML files (default: the ones shipped with the package)"
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--checkpoint-steps", type=int, default=50_000, help="checkpoint a run every N env steps (default 50,000) ..."
    )
    parser.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=10.0,
        help="... or every M minutes of wall time, whichever comes first (default 10)",
    )
    parser.add_argument(
        "--no-speed",
        action="store_true",
        help="skip the cost measurement at the end of a run (exported policy's latency, "
        "training step time); 'sb3-ofexi measure DIR' can add it later",
    )


def _specs(args: argparse.Namespace, methods: list[str], seeds: list[int]):
    from sb3_ofexi.harness.runs import RunSpec, load_hyperparams

    specs = []
    for method in methods:
        timesteps = args.timesteps or int(load_hyperparams(method, args.env, args.hyperparams)["n_timesteps"])
        for seed in seeds:
            specs.append(
                RunSpec(
                    method,
                    args.env,
                    seed,
                    timesteps,
                    args.out,
                    args.eval_freq,
                    args.eval_episodes,
                    args.device,
                    args.hyperparams,
                    checkpoint_steps=args.checkpoint_steps,
                    checkpoint_seconds=60.0 * args.checkpoint_minutes,
                    measure_speed=not getattr(args, "no_speed", False),
                )
            )
    return specs


def _key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``, the value read as YAML (``nu_rl_reference=sb3``, ``theta_lr=1e-3``, ``xi_round=0.9``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r}: accepted: KEY=VALUE, e.g. nu_rl_reference=sb3")
    parsed = yaml.safe_load(value)
    if isinstance(parsed, str):  # YAML 1.1 reads 1e-3 as a string; numbers as the user meant them
        try:
            parsed = float(parsed) if any(c in parsed for c in ".eE") else int(parsed)
        except ValueError:
            pass
    return key.strip(), parsed


def _budget_value(text: str) -> int | float:
    """``20000`` -> int (parameters), ``0.3`` -> float (fraction); SAC_OFEXi checks the range."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: accepted: an int (parameters) or a float in (0, 1)") from None


def _check_checkpointing(args: argparse.Namespace) -> None:
    if args.checkpoint_steps < 1 or args.checkpoint_minutes <= 0:
        raise ValueError(
            f"--checkpoint-steps {args.checkpoint_steps} --checkpoint-minutes {args.checkpoint_minutes}: "
            "accepted: an int >= 1 and a number > 0"
        )


def _train(args: argparse.Namespace) -> int:
    from sb3_ofexi.harness.registry import parse_methods
    from sb3_ofexi.harness.runs import train_one

    _check_checkpointing(args)
    (method,) = parse_methods(args.method)
    (spec,) = _specs(args, [method], [args.seed])
    spec.progress_bar = not args.no_progress
    spec.overrides = {
        f"{kind}_budget": getattr(args, f"{kind}_budget")
        for kind in ("deploy", "train")
        if getattr(args, f"{kind}_budget") is not None
    }
    spec.overrides.update(dict(args.set or []))
    summary = train_one(spec)  # continues from the run's checkpoint if it was interrupted
    print(
        f"{method} on {args.env}, seed {args.seed}: score {summary['score']:.1f}, params {summary['params']}, "
        f"{summary['wall_s']:.0f} s"
    )
    for kind, entry in (summary.get("budgets") or {}).items():
        if isinstance(entry, dict):
            print(
                f"{kind} budget {entry['budget']:,}: {entry['params']:,} parameters, "
                f"{'met' if entry['met'] else 'NOT met'}"
            )
    print(f"model, evaluations.npz and summary.json in {spec.run_dir}")
    return 0


#: compare's settings that define the sweep (saved in sweep.json, read back by --resume)
_SWEEP_KEYS = (
    "env",
    "methods",
    "seeds",
    "timesteps",
    "eval_freq",
    "eval_episodes",
    "device",
    "hyperparams",
    "checkpoint_steps",
    "checkpoint_minutes",
    "threads",
)


def _compare(args: argparse.Namespace) -> int:
    from sb3_ofexi.harness.registry import parse_methods
    from sb3_ofexi.harness.report import make_report
    from sb3_ofexi.harness.sweep import load_sweep, run_sweep, save_sweep

    if args.env is None:
        if not args.resume:
            raise ValueError("--env is required (or --resume, to continue the sweep saved in --out)")
        for key, value in load_sweep(args.out).items():
            setattr(args, key, value)
    _check_checkpointing(args)
    methods = parse_methods(args.methods)
    if args.seeds < 1 or args.jobs < 1 or (args.threads is not None and args.threads < 1):
        raise ValueError(f"--seeds {args.seeds} --jobs {args.jobs} --threads {args.threads}: accepted: integers >= 1")
    specs = _specs(args, methods, list(range(args.seeds)))
    for spec in specs:
        spec.threads = args.threads
    save_sweep(args.out, {key: getattr(args, key) for key in _SWEEP_KEYS})
    where = f"{args.jobs} at a time" if args.backend == "local" else f"as Ray tasks ({args.address or 'local Ray'})"
    print(
        f"{len(specs)} runs ({', '.join(methods)} x {args.seeds} seeds) on {args.env}, {where}; "
        "finished runs are skipped, interrupted ones continue from their checkpoint"
    )
    start = time.perf_counter()
    results = run_sweep(specs, args.jobs, args.backend, args.address, args.num_cpus, args.num_gpus)
    failed = [r for r in results if r.get("status") == "failed"]
    report = make_report(args.out, args.hyperparams)
    print(f"all runs ended in {time.perf_counter() - start:.0f} s ({len(failed)} failed)")
    print("\n".join(line for section in report.sections for line in section.markdown()))  # the tables, not the plots
    print(f"report: {report.path}")
    return 1 if failed else 0


def _report(args: argparse.Namespace) -> int:
    from sb3_ofexi.harness.report import build_report

    path = build_report(args.dir, args.hyperparams, args.smooth)
    print(f"report: {path}")
    return 0


def _results(args: argparse.Namespace) -> int:
    from sb3_ofexi.harness.report import build_results, publish_runs

    if args.publish:
        copied = publish_runs(args.publish, args.dir)
        print(f"copied {len(copied)} result files from {args.publish} into {args.dir}")
    title = {"title": args.title} if args.title else {}
    path = build_results(args.dir, args.out, args.hyperparams, args.smooth, args.study, made_by=args.made_by, **title)
    print(f"results page: {path}")
    return 0


def _measure(args: argparse.Namespace) -> int:
    from sb3_ofexi.harness.measure import measure_run
    from sb3_ofexi.harness.runs import rebuild_model

    root = pathlib.Path(args.dir)
    runs = [root] if (root / "summary.json").exists() else sorted(p.parent for p in root.glob("*/seed*/summary.json"))
    if not runs:
        raise ValueError(f"No finished run in {root}: expected summary.json or METHOD/seedN/summary.json")
    print(f"{len(runs)} runs, one after the other, torch on {args.threads} thread(s), onnxruntime on 1")
    timed = 0
    for run_dir in runs:
        model = None
        if not (run_dir / "model.zip").exists():
            # a run without its model.zip (published, or from another machine) is timed on a model rebuilt
            # from its settings when that has the run's sizes (nothing pruned); else it keeps its timings
            try:
                model = rebuild_model(json.loads((run_dir / "summary.json").read_text()))
            except Exception as error:  # noqa: BLE001  (a method or env gone since: that run only)
                print(f"{run_dir}: no model.zip, and its settings build nothing here ({type(error).__name__}: {error})")
                continue
            if model is None:
                print(
                    f"{run_dir}: no model.zip and pruned (or other settings): keeps the timings it took when it ended"
                )
                continue
        speed = measure_run(run_dir, args.threads, model)
        timed += 1
        latency, step = speed.get("deploy_latency_ms"), speed.get("train_step_ms")
        print(
            f"{run_dir}: deploy latency {'n/a' if latency is None else f'{1e3 * latency:.1f} us'}, "
            f"train step {'n/a' if step is None else f'{step:.2f} ms'}"
        )
    if not timed:
        raise ValueError(f"No finished run in {root} has its model.zip or sizes a rebuilt model has: nothing re-timed")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from sb3_ofexi.harness.inspection import inspect_path

    print(inspect_path(args.path, args.algo, args.json))
    return 0


def _export(args: argparse.Namespace) -> int:
    from sb3_ofexi.common.export import EXPORT_ATOL, export_format, export_policy
    from sb3_ofexi.harness.inspection import load_model
    from sb3_ofexi.harness.runs import param_counts

    if args.out and args.out_option and args.out != args.out_option:
        raise ValueError(f"two outputs, {args.out!r} and --out {args.out_option!r}: accepted: one of them")
    out = args.out or args.out_option
    if not out:
        raise ValueError("no output: accepted: OUT (a .onnx, .pt, .c or .h path) or --out DIR")
    fmt = export_format(out, args.format)  # checks the output before the model is loaded
    c_only = {"--name": args.name, "--dtype": args.dtype, "--sparse": args.sparse}
    c_only.update({"--int8-max-error": args.int8_max_error, "--vec-normalize": args.vec_normalize})
    c_only["--no-check"] = True if args.no_check else None
    given = [flag for flag, value in c_only.items() if value is not None]
    if fmt != "c" and given:
        raise ValueError(f"{', '.join(given)}: accepted with --format c only")
    model = load_model(args.model, args.algo)
    counts = param_counts(model)
    if fmt != "c":
        export_policy(model, out, format=fmt)
        print(
            f"exported {args.model} -> {out} (deploy params: {counts['deploy']:,}; checked against predict "
            f"to {EXPORT_ATOL:g} per unit of action bound)"
        )
        return 0
    from sb3_ofexi.common.c_export import export_c

    vec_normalize = None
    if args.vec_normalize is not None:
        import pickle

        if not pathlib.Path(args.vec_normalize).exists():
            raise FileNotFoundError(f"No such VecNormalize file: {args.vec_normalize}")
        with open(args.vec_normalize, "rb") as stream:  # VecNormalize.save's pickle, without its env
            vec_normalize = pickle.load(stream)
    options = {"name": args.name, "dtype": args.dtype, "sparse": args.sparse, "int8_max_error": args.int8_max_error}
    try:
        result = export_c(
            model,
            out,
            vec_normalize=vec_normalize,
            check=False if args.no_check else None,
            **{key: value for key, value in options.items() if value is not None},
        )
    except RuntimeError as error:  # the compiled C does not reproduce predict: an error, not a traceback
        print(f"sb3-ofexi export: error: {error}", file=sys.stderr)
        return 2
    stored = ", ".join(f"{'CSR' if layer.sparse else 'dense'} {layer.rows}x{layer.cols}" for layer in result.layers)
    print(f"exported {args.model} -> {result.header} and {result.source} (deploy params: {counts['deploy']:,})")
    print(
        f"weights ({result.dtype}): {stored}; {result.weight_bytes_stored:,} bytes as stored, "
        f"{result.weight_bytes_dense:,} as dense float32"
    )
    if result.check_error is None:
        print("not checked: no C compiler (or --no-check)")
    else:
        bound = f" (tolerance {result.tolerance:g})" if result.tolerance is not None else ""
        print(f"checked: max |C - predict| = {result.check_error:.3g} on {result.observations} observations{bound}")
    if result.int8_error is not None:
        print(f"int8: max action error against the float policy {result.int8_error:.3g} (bound {result.int8_bound:g})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from sb3_ofexi.harness.registry import METHODS

    methods = ", ".join(METHODS)
    parser = argparse.ArgumentParser(prog="sb3-ofexi", description="SAC_OFEXi: SAC that prunes itself while it learns")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="one run: env, method, steps, seed")
    _run_options(train)
    train.add_argument("--method", default="prune-b", help=f"one of {methods} (default: prune-b)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument(
        "--deploy-budget",
        type=_budget_value,
        help="deploy parameters to end at or below: an int (e.g. 20000), or a fraction of the "
        "initial size in (0, 1) (OFEXi methods with gates)",
    )
    train.add_argument("--train-budget", type=_budget_value, help="the same for train parameters")
    train.add_argument(
        "--set",
        type=_key_value,
        action="append",
        metavar="KEY=VALUE",
        help="override one keyword of the method's YAML entry, e.g. --set nu_rl_reference=sb3 "
        "(OFEXi methods; repeatable)",
    )
    train.set_defaults(func=_train)

    compare = commands.add_parser(
        "compare", help="methods x seeds on one env, then the report; re-run (or --resume) to continue a sweep"
    )
    _run_options(compare, env_required=False)
    compare.add_argument("--methods", default="sac,ofe,prune-b", help=f"comma-separated, from {methods}")
    compare.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default: 3)")
    compare.add_argument("--jobs", type=int, default=1, help="local backend: runs in parallel processes (default: 1)")
    compare.add_argument(
        "--threads",
        type=int,
        help="torch threads per run (default: the machine's cores / --jobs; 1 beside other work, e.g. a study)",
    )
    compare.add_argument(
        "--resume",
        action="store_true",
        help="continue the sweep saved in --out (sweep.json): finished runs are skipped, "
        "unfinished ones continue from their last checkpoint (re-running the same "
        "command does the same)",
    )
    compare.add_argument(
        "--backend",
        default="local",
        choices=["local", "ray"],
        help="local processes (default) or Ray tasks (pip install 'sb3_ofexi[ray]')",
    )
    compare.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    compare.add_argument("--num-cpus", type=float, default=1.0, help="Ray: CPUs per run (default 1)")
    compare.add_argument("--num-gpus", type=float, default=0.0, help="Ray: GPUs per run (default 0)")
    compare.set_defaults(func=_compare)

    report = commands.add_parser("report", help="rebuild the report from existing run directories")
    report.add_argument("dir", help="a folder written by 'compare' (METHOD/seedN/summary.json)")
    report.add_argument("--hyperparams", help="folder of rl-zoo3 YAML files (for the OFE baseline's counts)")
    report.add_argument(
        "--smooth",
        type=int,
        default=1,
        help="learning curves as an N-point moving mean (the paper's figures: 5; default 1: raw)",
    )
    report.set_defaults(func=_report)

    results = commands.add_parser(
        "results", help="the results page: a report per task folder of DIR (ENV/METHOD/seedN), and one page of them"
    )
    results.add_argument("dir", help="a folder of task folders, e.g. docs/results")
    results.add_argument("--out", default="docs/RESULTS.md", help="the page to write (default docs/RESULTS.md)")
    results.add_argument(
        "--publish",
        metavar="RUNS",
        help="first copy the small result files (summary.json, evaluations.npz, speed.json, "
        "failed.json; no models) of RUNS/ENV/METHOD/seedN into DIR",
    )
    results.add_argument("--hyperparams", help="folder of rl-zoo3 YAML files (for the OFE baseline's counts)")
    results.add_argument("--title", help="the page's title (default: Results on MuJoCo)")
    results.add_argument(
        "--made-by",
        action="append",
        metavar="COMMAND",
        help="a command that made the runs, shown on the page (repeat for several; default: scripts/results.sh's)",
    )
    results.add_argument(
        "--study",
        metavar="DIR",
        help="the long study's published folder (docs/study): it leads the page, with its "
        "pre-registered criterion, outcome and progress",
    )
    results.add_argument(
        "--smooth",
        type=int,
        default=1,
        help="learning curves as an N-point moving mean (the paper's figures: 5; default 1: raw)",
    )
    results.set_defaults(func=_results)

    measure = commands.add_parser(
        "measure", help="re-measure the cost of finished runs from their model.zip (speed.json beside each)"
    )
    measure.add_argument("dir", help="a run folder (summary.json) or a folder written by 'compare'")
    measure.add_argument("--threads", type=int, default=1, help="torch threads for the training step (default 1)")
    measure.set_defaults(func=_measure)

    from sb3_ofexi.harness.registry import ALGOS

    inspect = commands.add_parser(
        "inspect",
        help="what a saved model or a training run's newest checkpoint holds now: steps, theta phase, sizes, "
        "units and undecided thetas per layer, the newest theta diagnostics",
    )
    inspect.add_argument("path", help="a model .zip, a run's folder (its newest checkpoint) or a parked folder")
    inspect.add_argument(
        "--algo", default="auto", help=f"the class that saved it: auto (read from the file), {', '.join(ALGOS)}"
    )
    inspect.add_argument("--json", action="store_true", help="print the data as JSON")
    inspect.set_defaults(func=_inspect)

    export = commands.add_parser(
        "export", help="export the deterministic policy of a saved model to .onnx, .pt or C (a .h + .c pair)"
    )
    export.add_argument("model", help="a saved model (.zip)")
    export.add_argument(
        "--algo",
        default="auto",
        help=f"the class that saved it: auto (read from the file; the default), {', '.join(ALGOS)}",
    )
    export.add_argument(
        "out",
        nargs="?",
        help="output file: .onnx (checked with onnxruntime), .pt (TorchScript), or .c / .h (C); or use --out",
    )
    export.add_argument("--out", dest="out_option", metavar="OUT", help="output file, or a folder for C")
    export.add_argument("--format", choices=["onnx", "pt", "c"], help="default: from the output's suffix (a folder: c)")
    export.add_argument(
        "--name",
        help="C: the policy's identifier, NAME_act() in NAME.h / NAME.c (default: the file's stem, or 'policy')",
    )
    export.add_argument("--dtype", choices=["float32", "int8"], help="C: weight type (default float32)")
    export.add_argument(
        "--sparse",
        choices=["auto", "never", "always"],
        help="C: compressed sparse rows for layers more than half zeros (auto, the default), never or always",
    )
    export.add_argument(
        "--int8-max-error",
        type=float,
        help="C, int8: refuse when the actions move by more than this per unit of the largest action bound "
        "(default 0.05)",
    )
    export.add_argument(
        "--vec-normalize", help="C: a VecNormalize file (VecNormalize.save) whose normalisation the C code applies"
    )
    export.add_argument("--no-check", action="store_true", help="C: do not compile and compare with predict")
    export.set_defaults(func=_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"sb3-ofexi {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
