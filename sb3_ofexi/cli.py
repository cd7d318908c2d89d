"""The ``sb3-ofexi`` command line."""

from __future__ import annotations

import argparse
import sys


def _export(args: argparse.Namespace) -> int:
    from sb3_ofexi.sac_ofexi import SAC_OFEXi

    model = SAC_OFEXi.load(args.model, device="cpu")
    model.export_policy(args.out)
    counts = model.param_counts()
    print(f"exported {args.model} -> {args.out} (deploy params: {counts['deploy']:,}; checked against predict to 1e-5)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sb3-ofexi", description="SAC_OFEXi: SAC that prunes itself while it learns")
    commands = parser.add_subparsers(dest="command", required=True)
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
