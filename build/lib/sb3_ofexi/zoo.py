"""``python -m sb3_ofexi.zoo train|enjoy``: rl-zoo3 with this package's algorithms
(:mod:`sb3_ofexi.harness.zoo`), under its short name."""

from sb3_ofexi.harness.zoo import main

if __name__ == "__main__":
    raise SystemExit(main())
