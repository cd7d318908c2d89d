"""rl-zoo3 with this package's algorithms registered: ``python -m sb3_ofexi.zoo train|enjoy [rl-zoo3 flags]``.

``--algo``: ``sac_ofexi``, ``td3_ofexi``, ``tqc_ofexi``, and the peer methods ``polyprune_sac`` and
``eaudesac``.

rl-zoo3 has no plugin API; as SBX documents, the algorithm is added to its ``ALGOS``
dict (shared by every rl-zoo3 module) before rl-zoo3's own entry point runs, so all
of its flags keep working::

    python -m sb3_ofexi.zoo train --algo sac_ofexi --env Hopper-v5 -conf hyperparams/sac_ofexi_prune_b.yml
    python -m sb3_ofexi.zoo enjoy --algo sac_ofexi --env Hopper-v5 -f logs --no-render
    python -m sb3_ofexi.zoo train --algo eaudesac --env Hopper-v5 -conf hyperparams/eaudesac.yml
    python -m sb3_ofexi.zoo train --algo td3_ofexi --env Hopper-v5 -conf td3_ofexi_prune_b
    python -m sb3_ofexi.zoo train --algo sac_ofexi --env Hopper-v5 -conf sac_ofexi_prune_b   # a packaged file

``-optimize`` works with every ``--algo`` of the package (:mod:`sb3_ofexi.harness.tuning`). ``-conf`` / ``--conf-file`` takes a path, or the name of one of the package's YAML files.
"""

from __future__ import annotations

import sys

USAGE = "usage: python -m sb3_ofexi.zoo {train,enjoy} [rl-zoo3 arguments]  (see rl-zoo3's --help)"


def register() -> None:
    """Make ``--algo sac_ofexi | td3_ofexi | tqc_ofexi | polyprune_sac | eaudesac`` known to rl-zoo3."""
    import rl_zoo3

    from sb3_ofexi.harness.registry import ALGOS, ZOO_OWN
    from sb3_ofexi.harness.tuning import register_sampler

    rl_zoo3.ALGOS.update({name: algo for name, algo in ALGOS.items() if name not in ZOO_OWN})
    register_sampler()  # -optimize for every --algo of the package


CONF_FLAGS = ("-conf", "--conf-file")


def resolve_conf(args: list[str]) -> list[str]:
    """``-conf NAME`` -> the path of the packaged file NAME(.yml) when NAME is not a path."""
    from sb3_ofexi.harness.runs import resolve_hyperparams_file

    out = list(args)
    for i, arg in enumerate(out):
        if arg in CONF_FLAGS and i + 1 < len(out):
            out[i + 1] = str(resolve_hyperparams_file(out[i + 1]))
        elif arg.startswith("--conf-file="):
            out[i] = "--conf-file=" + str(resolve_hyperparams_file(arg.split("=", 1)[1]))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in ("train", "enjoy"):
        print(USAGE, file=sys.stderr)
        return 2
    register()
    command, rest = argv[0], argv[1:]
    if any(arg in CONF_FLAGS or arg.startswith("--conf-file=") for arg in rest):
        try:
            rest = resolve_conf(rest)
        except ValueError as error:
            print(f"python -m sb3_ofexi.zoo {command}: error: {error}", file=sys.stderr)
            return 2
    saved_argv = sys.argv
    sys.argv = [f"python -m sb3_ofexi.zoo {command}", *rest]
    try:
        if command == "train":
            from rl_zoo3.train import train

            train()
        else:
            from rl_zoo3.enjoy import enjoy

            enjoy()
    finally:
        sys.argv = saved_argv
    return 0


if __name__ == "__main__":
    sys.exit(main())
