"""What a trained model costs, measured: the exported policy's batch-1 latency and the training
step's time at the model's final size. The same procedure for every method, so structural
pruning (OFEXiNet: smaller matrices) and unstructured pruning (PolyPrune, EauDeSAC: zeros in
dense matrices) sit side by side.

* ``deploy_latency_ms``: the deterministic policy exported to ONNX by
  :func:`sb3_ofexi.common.export.export_policy` (one exporter for all methods), run by
  onnxruntime on one thread, one observation per call; median over repetitions.
* ``train_step_ms``: ``model.train()`` for a few gradient steps at the final size, batch size
  of the run, ms per gradient step; median over repetitions. It runs after the model is saved
  (it changes the in-memory model, never the saved one).

Timings depend on the machine and on what else runs on it: compare them within one sweep, or
re-measure every run of a folder in one sitting with ``sb3-ofexi measure DIR``.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
import time
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger

#: calls per timing repetition, and repetitions (the median is reported)
LATENCY_CALLS = 1000
TRAIN_STEPS = 20
REPEATS = 5
SPEED_FILE = "speed.json"


def onnx_session(path: str | pathlib.Path) -> Any:
    """An onnxruntime CPU session on one thread (batch-1 latency is what a controller pays)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def deploy_latency_ms(model: BaseAlgorithm, calls: int = LATENCY_CALLS, repeats: int = REPEATS) -> float:
    """Median ms per batch-1 call of the exported policy (onnxruntime, 1 thread)."""
    from sb3_ofexi.common.export import export_policy

    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "policy.onnx"
        export_policy(model, path)
        session = onnx_session(path)
    shape = model.observation_space.shape  # type: ignore[union-attr]
    feed = {"obs": np.zeros((1, *shape), dtype=np.float32)}
    for _ in range(min(100, calls)):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            session.run(None, feed)
        times.append((time.perf_counter() - start) / calls)
    return 1e3 * float(np.median(times))


def _fill_replay_buffer(model: BaseAlgorithm, transitions: int) -> None:
    """Random-action transitions from the model's env (timing does not depend on the data)."""
    env = model.get_env()
    if env is None:
        raise ValueError("the model has no env: load it with env=... to time its training step")
    obs = env.reset()
    for _ in range(transitions):
        action = np.stack([env.action_space.sample() for _ in range(env.num_envs)])
        new_obs, reward, done, infos = env.step(action)
        model.replay_buffer.add(obs, new_obs, model.policy.scale_action(action), reward, done, infos)  # type: ignore[union-attr]
        obs = new_obs


def train_step_ms(model: BaseAlgorithm, gradient_steps: int = TRAIN_STEPS, repeats: int = REPEATS) -> float:
    """Median ms per gradient step of ``model.train()`` at the model's current size."""
    batch_size = int(model.batch_size)  # type: ignore[attr-defined]
    if model.replay_buffer.size() < batch_size:  # type: ignore[attr-defined]
        _fill_replay_buffer(model, 2 * batch_size)
    try:
        model.logger  # noqa: B018 -- set by learn(); a loaded model has none
    except AttributeError:
        model.set_logger(Logger(folder=None, output_formats=[]))
    model.train(gradient_steps=2, batch_size=batch_size)  # warm-up (lazy optimizer state)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.train(gradient_steps=gradient_steps, batch_size=batch_size)  # type: ignore[attr-defined]
        times.append((time.perf_counter() - start) / gradient_steps)
    return 1e3 * float(np.median(times))


def measure_speed(model: BaseAlgorithm) -> dict[str, Any]:
    """Both timings, with the thread counts they ran with; an error is recorded, not raised
    (a run's results must not be lost to a failed timing)."""
    import platform

    result: dict[str, Any] = {
        "torch_threads": th.get_num_threads(),
        "onnx_threads": 1,
        "time": time.time(),
        "machine": f"{os.cpu_count()} CPUs ({platform.machine()}), torch {th.__version__}",
    }
    for key, function in (("deploy_latency_ms", deploy_latency_ms), ("train_step_ms", train_step_ms)):
        try:
            result[key] = function(model)
        except Exception as error:  # noqa: BLE001
            result[key] = None
            result[f"{key}_error"] = f"{type(error).__name__}: {error}"
    return result


def measure_run(
    run_dir: str | pathlib.Path, threads: int | None = 1, model: BaseAlgorithm | None = None
) -> dict[str, Any]:
    """Time a finished run's ``model.zip`` (or ``model``, a stand-in of its sizes built by
    :func:`sb3_ofexi.harness.runs.rebuild_model`) and write ``speed.json`` beside its summary."""
    from sb3_ofexi.common.loading import resolve_env
    from sb3_ofexi.harness.registry import METHODS

    run_dir = pathlib.Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    if threads:
        th.set_num_threads(threads)
    source = "sb3-ofexi measure (rebuilt from summary.json: the run's sizes, fresh weights)"
    if model is None:
        _, algo = METHODS[summary["method"]]
        model = algo.load(run_dir / "model.zip", env=resolve_env(summary["env_id"]), device="cpu")
        source = "sb3-ofexi measure (model.zip)"
    speed = {**measure_speed(model), "source": source}
    tmp = run_dir / f"{SPEED_FILE}.tmp"
    tmp.write_text(json.dumps(speed, indent=1))
    os.replace(tmp, run_dir / SPEED_FILE)
    return speed


def run_speed(run_dir: pathlib.Path, summary: dict[str, Any]) -> dict[str, Any] | None:
    """A run's timings: ``speed.json`` (re-measured) if present, else the summary's own."""
    path = run_dir / SPEED_FILE
    if path.exists():
        return json.loads(path.read_text())
    return summary.get("speed")
