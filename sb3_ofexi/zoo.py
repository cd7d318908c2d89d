"""rl-zoo3 with this package's algorithms registered: ``python -m sb3_ofexi.zoo train|enjoy [rl-zoo3 flags]``.

``--algo``: ``sac_ofexi``, and the peer methods ``polyprune_sac`` and ``eaudesac``.

rl-zoo3 has no plugin API; as SBX documents, the algorithm is added to its ``ALGOS``
dict (shared by every rl-zoo3 module) before rl-zoo3's own entry point runs, so all
of its flags keep working::

    python -m sb3_ofexi.zoo train --algo sac_ofexi --env Hopper-v5 -conf hyperparams/sac_ofexi_prune_b.yml
    python -m sb3_ofexi.zoo enjoy --algo sac_ofexi --env Hopper-v5 -f logs --no-render
    python -m sb3_ofexi.zoo train --algo eaudesac --env Hopper-v5 -conf hyperparams/eaudesac.yml
"""

from __future__ import annotations

import sys

USAGE = "usage: python -m sb3_ofexi.zoo {train,enjoy} [rl-zoo3 arguments]  (see rl-zoo3's --help)"


def register() -> None:
    """Make ``--algo sac_ofexi | polyprune_sac | eaudesac`` known to rl-zoo3."""
    import rl_zoo3

    from sb3_ofexi.experiments import ALGOS

    rl_zoo3.ALGOS.update({name: algo for name, algo in ALGOS.items() if name != "sac"})  # rl-zoo3 has "sac"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in ("train", "enjoy"):
        print(USAGE, file=sys.stderr)
        return 2
    register()
    command, rest = argv[0], argv[1:]
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
