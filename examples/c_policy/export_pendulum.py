"""Train a tiny SAC_OFEXi (prune-b) on Pendulum-v1 for a moment, export its policy as C, and print
the action main.c should print (``model.predict`` on the same observation).

    python examples/c_policy/export_pendulum.py     # -> examples/c_policy/build/pendulum.{h,c}

See README.md in this folder for the C side.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
import torch as th

from sb3_ofexi import SAC_OFEXi
from sb3_ofexi.common.c_export import export_c

HERE = pathlib.Path(__file__).resolve().parent
#: the observation main.c passes to pendulum_act: cos(angle), sin(angle), angular velocity
OBS = np.array([0.5, 0.8660254, -1.0], np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="env steps of training (default 1000)")
    parser.add_argument("--out", default=str(HERE / "build"), help="folder for pendulum.h / pendulum.c")
    parser.add_argument("--dtype", default="float32", choices=["float32", "int8"])
    args = parser.parse_args()
    th.set_num_threads(1)
    # small networks and a short theta schedule (prune-b's nu), so that the thetas round and units go
    # within the run
    model = SAC_OFEXi(
        "MlpPolicy",
        "Pendulum-v1",
        ofe_layers=2,
        ofe_units=16,
        policy_kwargs=dict(net_arch=[32, 32]),
        learning_starts=200,
        xi_start=0.1,
        xi_round=0.8,
        theta_lr=0.05,
        prune_freq=50,
        seed=0,
        device="cpu",
    )
    model.learn(args.steps)
    print(f"trained {args.steps} steps: units {model.unit_counts()}, deploy params {model.param_counts()['deploy']:,}")
    result = export_c(model, pathlib.Path(args.out) / "pendulum.c", dtype=args.dtype)
    print(f"wrote {result.header} and {result.source}")
    print(f"weights: {result.weight_bytes_stored:,} bytes as stored ({result.dtype})")
    if result.check_error is not None:
        print(f"checked: max |C - predict| = {result.check_error:.2g} on {result.observations} observations")
    action, _ = model.predict(OBS, deterministic=True)
    print("main.c should print (model.predict on its observation):")
    for i, value in enumerate(np.atleast_1d(action)):
        print(f"action[{i}] = {value:.6f}")


if __name__ == "__main__":
    main()
