"""``python -m sb3_ofexi.cli``: the command line (:mod:`sb3_ofexi.harness.cli`), under the name that
the ``sb3-ofexi`` console script and runs started by earlier versions (the long study) use."""

from sb3_ofexi.harness.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
