"""The ``sb3-ofexi`` command line: train, compare, report, export."""

from __future__ import annotations

import argparse
import pathlib
import sys
import time


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="Gymnasium id, e.g. Pendulum-v1 or Hopper-v5")
    parser.add_argument("--timesteps", type=int, help="env steps per run (default: the YAML's n_timesteps)")
    parser.add_argument("--eval-freq", type=int,
                        help="evaluate every N env steps (default: 10,000 as in the paper, or timesteps / 20 if less)")
    parser.add_argument("--eval-episodes", type=int, default=10,
                        help="deterministic episodes per evaluation (default: 10)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--hyperparams", help="folder of rl-zoo3 YAML files (default: the repository's hyperparams/)")
    parser.add_argument("--out", required=True, help="output folder")


def _specs(args: argparse.Namespace, methods: list[str], seeds: list[int]):
    from sb3_ofexi.experiments import RunSpec, load_hyperparams

    specs = []
    for method in methods:
        timesteps = args.timesteps or int(load_hyperparams(method, args.env, args.hyperparams)["n_timesteps"])
        for seed in seeds:
            specs.append(RunSpec(method, args.env, seed, timesteps, args.out, args.eval_freq, args.eval_episodes,
                                 args.device, args.hyperparams))  # fmt: skip
    return specs


def _train(args: argparse.Namespace) -> int:
    from sb3_ofexi.experiments import parse_methods, train_one

    (method,) = parse_methods(args.method)
    (spec,) = _specs(args, [method], [args.seed])
    spec.progress_bar = not args.no_progress
    summary = train_one(spec)
    print(f"{method} on {args.env}, seed {args.seed}: score {summary['score']:.1f}, params {summary['params']}, "
          f"{summary['wall_s']:.0f} s")  # fmt: skip
    print(f"model, evaluations.npz and summary.json in {spec.run_dir}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from sb3_ofexi.experiments import parse_methods, run_many
    from sb3_ofexi.report import build_report

    methods = parse_methods(args.methods)
    if args.seeds < 1 or args.jobs < 1:
        raise ValueError(f"--seeds {args.seeds} --jobs {args.jobs}: accepted: integers >= 1")
    specs = _specs(args, methods, list(range(args.seeds)))
    print(f"{len(specs)} runs ({', '.join(methods)} x {args.seeds} seeds) on {args.env}, {args.jobs} at a time")
    start = time.perf_counter()
    run_many(specs, args.jobs)
    path = build_report(args.out, args.hyperparams)
    print(f"all runs done in {time.perf_counter() - start:.0f} s")
    print(path.read_text().split("## Training time")[0].split("## Score")[1].join(["## Score", ""]))
    print(f"report: {path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from sb3_ofexi.report import build_report

    path = build_report(args.dir, args.hyperparams)
    print(f"report: {path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from sb3_ofexi.sac_ofexi import SAC_OFEXi

    if not pathlib.Path(args.model).exists():
        raise FileNotFoundError(f"No such model file: {args.model}")
    model = SAC_OFEXi.load(args.model, device="cpu")
    model.export_policy(args.out)
    counts = model.param_counts()
    print(f"exported {args.model} -> {args.out} (deploy params: {counts['deploy']:,}; checked against predict to 1e-5)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from sb3_ofexi.experiments import METHODS

    methods = ", ".join(METHODS)
    parser = argparse.ArgumentParser(prog="sb3-ofexi", description="SAC_OFEXi: SAC that prunes itself while it learns")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="one run: env, method, steps, seed")
    _run_options(train)
    train.add_argument("--method", default="prune-b", help=f"one of {methods} (default: prune-b)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)

    compare = commands.add_parser("compare", help="methods x seeds on one env, then the report")
    _run_options(compare)
    compare.add_argument("--methods", default="sac,ofe,prune-b", help=f"comma-separated, from {methods}")
    compare.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default: 3)")
    compare.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (default: 1)")
    compare.set_defaults(func=_compare)

    report = commands.add_parser("report", help="rebuild the report from existing run directories")
    report.add_argument("dir", help="a folder written by 'compare' (METHOD/seedN/summary.json)")
    report.add_argument("--hyperparams", help="folder of rl-zoo3 YAML files (for the OFE baseline's counts)")
    report.set_defaults(func=_report)

    export = commands.add_parser("export", help="export phi_o + actor of a saved model to .onnx or .pt")
    export.add_argument("model", help="a model saved by SAC_OFEXi.save() (.zip)")
    export.add_argument("out", help="output file: .onnx (checked with onnxruntime) or .pt (TorchScript)")
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
