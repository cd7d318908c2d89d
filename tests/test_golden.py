"""Golden runs: seeded prune-b, ofe, polyprune and eaudesac runs pinned before a refactor.

A refactor must leave what a run computes unchanged: the last losses, the sizes, the actions on
fixed observations and a checksum of every parameter. The expected values are in
``tests/data/golden.json``, written by ``python -m tests.test_golden --write`` at the code they pin
(CPU, eager step, one thread); regenerate them only for a change that is meant to change numbers,
and say so in the commit.

Each run is computed in a subprocess whose kernels give the same bits on any x86-64 CPU
(:data:`REPRODUCIBLE`): the fastest kernels differ between processors (an Intel Xeon and an AMD
EPYC disagreed in the 5th digit after 400 steps, and a unit of prune-b's critic was pruned on one
and kept on the other), which a pin of what the code computes must not see.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch as th

from sb3_ofexi import EauDeSAC, PolyPruneSAC, SAC_OFEXi

GOLDEN = pathlib.Path(__file__).parent / "data" / "golden.json"
COMMON = {"learning_starts": 64, "batch_size": 32, "seed": 0, "device": "cpu"}
OFE_SMALL = {"ofe_layers": 2, "ofe_units": 8, "policy_kwargs": {"net_arch": [16, 16]}, "compile_step": False}
METHODS: dict[str, tuple[type, dict[str, Any]]] = {
    # gates on, nu large enough that units are pruned within the run; the schedule in env steps
    "prune-b": (
        SAC_OFEXi,
        {
            **OFE_SMALL,
            "preset": "prune-b",
            "nu_ofe": 1e-3,
            "nu_actor": 1e-3,
            "nu_critic": 5e-3,
            "theta_lr": 0.01,
            "xi_start": 150,
            "xi_round": 320,
            "prune_freq": 50,
            "theta_diagnostics_freq": 50,
        },
    ),
    "ofe": (SAC_OFEXi, {**OFE_SMALL, "preset": "ofe"}),
    "polyprune": (PolyPruneSAC, {"policy_kwargs": {"net_arch": [32, 32]}, "prune_start": 100, "prune_end": 300}),
    "eaudesac": (EauDeSAC, {"policy_kwargs": {"net_arch": [32, 32]}, "selection_period": 50}),
}
STEPS = 400
ROOT = pathlib.Path(__file__).resolve().parents[1]
#: MKL's conditional numerical reproducibility (the same code path on every x86-64 processor), ATen's
#: scalar kernels instead of the AVX2 / AVX-512 ones it picks by CPU, oneDNN off, one thread
REPRODUCIBLE = {
    "MKL_CBWR": "COMPATIBLE",
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
LOSSES = ("train/actor_loss", "train/critic_loss", "train/ent_coef", "train/aux_loss")


def fingerprint(method: str) -> dict[str, Any]:
    """What a seeded run of ``method`` computes: losses, sizes, actions, a parameter checksum."""
    th.manual_seed(0)
    np.random.seed(0)
    th.set_num_threads(1)
    th.backends.mkldnn.enabled = False
    algo, kwargs = METHODS[method]
    model = algo("MlpPolicy", "Pendulum-v1", **COMMON, **kwargs)
    model.learn(STEPS)
    obs = np.random.default_rng(1).uniform(-1.0, 1.0, (8, 3)).astype(np.float32)
    actions, _ = model.predict(obs, deterministic=True)
    logged = model.logger.name_to_value
    checksum = float(sum(p.detach().double().abs().sum() for p in model.policy.parameters()))
    out: dict[str, Any] = {
        "losses": {key: float(logged[key]) for key in LOSSES if key in logged},
        "actions": actions.astype(float).tolist(),
        "param_abs_sum": checksum,
        "num_timesteps": int(model.num_timesteps),
    }
    if hasattr(model, "param_counts"):
        out["params"] = model.param_counts()
    if hasattr(model, "unit_counts"):
        out["units"] = model.unit_counts()
    if hasattr(model, "sparsities"):
        out["sparsities"] = json.loads(json.dumps(model.sparsities()))  # floats and lists of floats
    return out


def _assert_close(got: Any, expected: Any, where: str) -> None:
    if isinstance(expected, dict):
        assert set(got) == set(expected), f"{where}: keys {sorted(got)} != {sorted(expected)}"
        for key in expected:
            _assert_close(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), f"{where}: length {len(got)} != {len(expected)}"
        for i, (a, b) in enumerate(zip(got, expected)):
            _assert_close(a, b, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-6), f"{where}: {got} != {expected}"
    else:
        assert got == expected, f"{where}: {got} != {expected}"


def reproducible_fingerprint(method: str) -> dict[str, Any]:
    """:func:`fingerprint` in a subprocess with the :data:`REPRODUCIBLE` kernels (they are chosen
    when torch and MKL load, so not in this process)."""
    env = {**os.environ, **REPRODUCIBLE, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "tests.test_golden", "--method", method],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("method", list(METHODS))
def test_a_seeded_run_computes_what_it_computed_when_pinned(method):
    expected = json.loads(GOLDEN.read_text())[method]
    _assert_close(reproducible_fingerprint(method), expected, method)


def test_the_golden_prune_b_run_prunes():
    """The pinned prune-b run exercises the whole schedule: units removed, thetas rounded."""
    expected = json.loads(GOLDEN.read_text())["prune-b"]
    units = expected["units"]
    assert sum(units["phi_o"]) < 16 or sum(units["actor"]) < 32 or sum(map(sum, units["critic"])) < 64


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="write tests/data/golden.json at the current code")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--method", choices=list(METHODS), help="print this run's fingerprint (one JSON line)")
    args = parser.parse_args()
    if args.method:
        print(json.dumps(fingerprint(args.method)))
        raise SystemExit(0)
    values = {method: reproducible_fingerprint(method) for method in METHODS}
    print(json.dumps(values, indent=1))
    if args.write:
        GOLDEN.write_text(json.dumps(values, indent=1) + "\n")
        print(f"wrote {GOLDEN}")
