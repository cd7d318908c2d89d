"""Resumable runs: a checkpoint holds everything a run needs to go on as if it had never stopped.

A checkpoint is a folder ``checkpoint-<env steps>/`` in the run's folder with

* ``model.zip`` (SB3's ``save``: weights, optimizers, schedule state, ``_last_obs``),
* ``replay_buffer.pkl`` (SB3's ``save_replay_buffer``),
* ``envs.pkl``: the training and evaluation environments, pickled, plus what pickling loses
  (the physics state of MuJoCo envs, which gymnasium rebuilds from their constructor
  arguments, and their random generators),
* ``state.pkl``: the callbacks' state (evaluation history, size history, prune cadence), the
  wall time so far, and the random states of Python, NumPy, torch and the action space.

It is written to ``checkpoint-<steps>.tmp/`` and renamed, then ``checkpoint.json`` (the
pointer to the newest one) is replaced atomically, then older checkpoints are deleted: a
run killed at any moment leaves a complete checkpoint behind.

Checkpoints are taken at the start of a rollout (:class:`RunCheckpoint`), where every
earlier env step has been stored and trained on, so resuming repeats nothing and skips
nothing: on CPU a resumed run ends with the numbers of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import random
import shutil
import time
from collections.abc import Callable
from typing import Any

import cloudpickle
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

POINTER = "checkpoint.json"

#: the attributes of SB3's EvalCallback that make up its state (the evaluation history)
EVAL_CALLBACK_STATE = (
    "n_calls",
    "evaluations_results",
    "evaluations_timesteps",
    "evaluations_length",
    "evaluations_successes",
    "best_mean_reward",
    "last_mean_reward",
    "_is_success_buffer",
)


def callback_state(callback: BaseCallback) -> dict[str, Any]:
    """A callback's state for a run checkpoint: its own ``state_dict()`` (this package's callbacks),
    SB3's EvalCallback's evaluation history, or ``n_calls``."""
    if hasattr(callback, "state_dict"):
        return callback.state_dict()
    names = EVAL_CALLBACK_STATE if isinstance(callback, EvalCallback) else ("n_calls",)
    return {name: getattr(callback, name) for name in names if hasattr(callback, name)}


def load_callback_state(callback: BaseCallback, state: dict[str, Any]) -> None:
    if hasattr(callback, "load_state_dict"):
        callback.load_state_dict(state)
        return
    for name, value in state.items():
        setattr(callback, name, value)


# --- random states ---------------------------------------------------------------------------
def rng_state(model: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": th.get_rng_state()}
    if th.cuda.is_available():
        state["cuda"] = th.cuda.get_rng_state_all()
    if model.action_space is not None and getattr(model.action_space, "_np_random", None) is not None:
        state["action_space"] = model.action_space.np_random.bit_generator.state
    return state


def set_rng_state(model: Any, state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    th.set_rng_state(state["torch"])
    if "cuda" in state and th.cuda.is_available():
        th.cuda.set_rng_state_all(state["cuda"])
    if "action_space" in state:
        model.action_space.np_random.bit_generator.state = state["action_space"]


# --- environments ----------------------------------------------------------------------------
def _sub_env_extras(env: Any) -> dict[str, Any]:
    """What pickling an env loses: its random generator and, for MuJoCo, the physics state."""
    unwrapped = env.unwrapped
    extras: dict[str, Any] = {}
    if getattr(unwrapped, "_np_random", None) is not None:
        extras["np_random"] = unwrapped._np_random.bit_generator.state
        extras["np_random_seed"] = getattr(unwrapped, "_np_random_seed", None)
    if hasattr(unwrapped, "model") and hasattr(unwrapped, "data"):
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        physics = np.empty(mujoco.mj_stateSize(unwrapped.model, spec))
        mujoco.mj_getState(unwrapped.model, unwrapped.data, physics, spec)
        extras["mujoco"] = physics
    return extras


def _restore_sub_env(env: Any, extras: dict[str, Any]) -> None:
    unwrapped = env.unwrapped
    if "np_random" in extras:
        generator = np.random.Generator(np.random.PCG64())
        generator.bit_generator.state = extras["np_random"]
        unwrapped._np_random = generator
        unwrapped._np_random_seed = extras["np_random_seed"]
    if "mujoco" in extras:
        import mujoco

        mujoco.mj_setState(unwrapped.model, unwrapped.data, extras["mujoco"], mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_forward(unwrapped.model, unwrapped.data)


def env_snapshot(vec_env: VecEnv) -> bytes | None:
    """A pickled ``DummyVecEnv`` with its sub-envs' extras; ``None`` for other VecEnvs
    (a resumed run then resets them: statistically the same run, not bit-identical)."""
    if not isinstance(vec_env, DummyVecEnv):
        return None
    extras = [_sub_env_extras(env) for env in vec_env.envs]
    return cloudpickle.dumps({"vec_env": vec_env, "extras": extras})


def env_restore(blob: bytes) -> VecEnv:
    data = pickle.loads(blob)
    vec_env = data["vec_env"]
    for env, extras in zip(vec_env.envs, data["extras"]):
        _restore_sub_env(env, extras)
    return vec_env


# --- checkpoints on disk ---------------------------------------------------------------------
def latest_checkpoint(run_dir: pathlib.Path) -> pathlib.Path | None:
    pointer = run_dir / POINTER
    if not pointer.exists():
        return None
    path = run_dir / json.loads(pointer.read_text())["dir"]
    return path if path.is_dir() else None


def _write_atomic(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_checkpoint(run_dir: pathlib.Path, model: Any, envs: dict[str, VecEnv], state: dict[str, Any]) -> pathlib.Path:
    """Write ``checkpoint-<steps>/`` atomically and point ``checkpoint.json`` at it."""
    name = f"checkpoint-{model.num_timesteps}"
    tmp = run_dir / f"{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save(tmp / "model.zip")
    model.save_replay_buffer(tmp / "replay_buffer.pkl")
    (tmp / "envs.pkl").write_bytes(pickle.dumps({key: env_snapshot(env) for key, env in envs.items()}))
    with open(tmp / "state.pkl", "wb") as handle:
        pickle.dump({**state, "rng": rng_state(model), "num_timesteps": model.num_timesteps}, handle)
    final = run_dir / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_atomic(run_dir / POINTER, json.dumps({"dir": name, "num_timesteps": model.num_timesteps}))
    for old in run_dir.glob("checkpoint-*"):
        if old != final and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return final


def remove_checkpoints(run_dir: pathlib.Path) -> None:
    for old in run_dir.glob("checkpoint-*"):
        shutil.rmtree(old, ignore_errors=True)
    (run_dir / POINTER).unlink(missing_ok=True)


class RunCheckpoint(BaseCallback):
    """Checkpoint every ``every_steps`` env steps or ``every_seconds`` of wall time, whichever
    comes first, at the start of a rollout; also writes ``progress.json`` for whoever watches.

    :param get_state: returns the run's own state to store (callbacks, wall time)
    """

    def __init__(
        self,
        run_dir: pathlib.Path,
        envs: dict[str, VecEnv],
        get_state: Callable[[], dict[str, Any]],
        every_steps: int = 50_000,
        every_seconds: float = 600.0,
        total_timesteps: int | None = None,
        evaluation: EvalCallback | None = None,
        progress_every_seconds: float = 2.0,
    ) -> None:
        super().__init__()
        self.evaluation = evaluation
        self.run_dir = run_dir
        self.envs = envs
        self.get_state = get_state
        self.every_steps = every_steps
        self.every_seconds = every_seconds
        self.total_timesteps = total_timesteps
        self.progress_every_seconds = progress_every_seconds
        self.n_checkpoints = 0
        self._last_step = 0
        self._last_time = 0.0
        self._progress_time = 0.0
        self._progress_step = 0

    def _on_training_start(self) -> None:
        self._last_step = self._progress_step = self.model.num_timesteps
        self._last_time = self._progress_time = time.monotonic()
        self.write_progress("running")

    def _on_rollout_start(self) -> None:
        steps = self.model.num_timesteps
        if steps == self._last_step:
            return
        if steps - self._last_step >= self.every_steps or time.monotonic() - self._last_time >= self.every_seconds:
            write_checkpoint(self.run_dir, self.model, self.envs, self.get_state())
            self.n_checkpoints += 1
            self._last_step, self._last_time = steps, time.monotonic()

    def _on_step(self) -> bool:
        if time.monotonic() - self._progress_time >= self.progress_every_seconds:
            self.write_progress("running")
        return True

    def write_progress(self, status: str) -> None:
        now, steps = time.monotonic(), self.model.num_timesteps
        rate = (steps - self._progress_step) / max(now - self._progress_time, 1e-9)
        self._progress_time, self._progress_step = now, steps
        last_eval = None
        if self.evaluation is not None and self.evaluation.evaluations_results:
            last_eval = float(np.mean(self.evaluation.evaluations_results[-1]))
        _write_atomic(
            self.run_dir / "progress.json",
            json.dumps(
                {
                    "status": status,
                    "timesteps": steps,
                    "total": self.total_timesteps,
                    "steps_per_s": rate,
                    "last_eval": last_eval,
                    "time": time.time(),
                }
            ),
        )
