"""Runs for comparisons: one method x one seed on one env, same budget and evaluation protocol.

Methods read their settings from the rl-zoo3 YAML files in ``hyperparams/``; the stock
SB3 ``SAC`` is the SAC / SAC-Big baseline.
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch as th
import yaml
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from torch import nn

from sb3_ofexi.common.complexity import count_params, mlp_param_count
from sb3_ofexi.common.diagnostics import theta_stats, undecided_by_network
from sb3_ofexi.common.pruning import PruningCallback
from sb3_ofexi.common.schedule import env_steps, parse_schedule_point
from sb3_ofexi.common.xi import xi_gates
from sb3_ofexi.harness.checkpoint import (
    RunCheckpoint,
    callback_state,
    env_restore,
    latest_checkpoint,
    load_callback_state,
    remove_checkpoints,
    set_rng_state,
)
from sb3_ofexi.harness.measure import measure_speed
from sb3_ofexi.harness.registry import METHODS, OFEXI_NAMES, is_ofexi
from sb3_ofexi.sac_ofexi import SAC_OFEXi

#: rl-zoo3 keys that change the environment rather than the algorithm
_ENV_KEYS = ("normalize", "n_envs", "frame_stack", "env_wrapper", "callback", "vec_env_wrapper")
#: a run checkpoints every 50k env steps or 10 minutes of wall time, whichever comes first
CHECKPOINT_STEPS = 50_000
CHECKPOINT_SECONDS = 600.0
#: the score window of a run without a prune-b entry to take it from: after 80% of training (paper, Table 3)
SCORE_WINDOW = 0.2
#: the paper evaluates every 10k env steps (section 5, Fig. 3; SPEC section 8)
EVAL_FREQ = 10_000
#: deterministic episodes per evaluation: the paper does not state it; 10
EVAL_EPISODES = 10


def default_eval_freq(timesteps: int) -> int:
    """Every 10,000 env steps (the paper), or T/20 when that is less (short runs keep 20 evaluations)."""
    return max(1, min(EVAL_FREQ, timesteps // 20))


def default_hyperparams_dir() -> pathlib.Path:
    """The rl-zoo3 YAML files: the package's copy when it is installed (``sb3_ofexi/hyperparams``,
    package data built from the repository's ``hyperparams/``), else the source tree's
    ``hyperparams/`` (a checkout, an editable install)."""
    package = pathlib.Path(__file__).resolve().parents[1]
    if (package / "hyperparams" / "sac.yml").exists():
        return package / "hyperparams"
    return package.parent / "hyperparams"


def resolve_hyperparams_file(name: str) -> pathlib.Path:
    """A YAML file given as a path, or by the name of a packaged file (``sac_ofexi_prune_b`` or
    ``sac_ofexi_prune_b.yml``)."""
    path = pathlib.Path(name)
    if path.exists():
        return path
    packaged = default_hyperparams_dir() / (name if name.endswith((".yml", ".yaml")) else f"{name}.yml")
    if path.parent == pathlib.Path(".") and packaged.exists():
        return packaged
    available = ", ".join(sorted(p.stem for p in default_hyperparams_dir().glob("*.yml")))
    raise ValueError(f"-conf {name!r}: no such file, and not a packaged file: accepted: a path or one of {available}")


def load_hyperparams(method: str, env_id: str, hyperparams_dir: str | pathlib.Path | None = None) -> dict[str, Any]:
    """The rl-zoo3 entry of ``method`` for ``env_id``, with ``policy_kwargs`` evaluated as rl-zoo3 does."""
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}: accepted: {', '.join(METHODS)}")
    path = pathlib.Path(hyperparams_dir or default_hyperparams_dir()) / f"{METHODS[method][0]}.yml"
    if not path.exists():
        raise ValueError(f"No hyperparameter file {path}: pass --hyperparams DIR (the repository's hyperparams/)")
    entries = yaml.safe_load(path.read_text())
    if env_id not in entries:
        raise ValueError(f"{path.name} has no entry for {env_id!r}: it has {', '.join(entries)}")
    hyperparams = dict(entries[env_id])
    if any(key in hyperparams for key in _ENV_KEYS):
        raise ValueError(f"{path.name}[{env_id}] uses {sorted(set(_ENV_KEYS) & set(hyperparams))}: run it with rl-zoo3")
    if isinstance(hyperparams.get("policy_kwargs"), str):
        hyperparams["policy_kwargs"] = eval(hyperparams["policy_kwargs"], {"dict": dict, "nn": nn})  # as rl-zoo3
    return hyperparams


def scale_schedule(hyperparams: dict[str, Any], timesteps: int) -> None:
    """Drop ``n_timesteps``; when the run's budget differs from it, move an absolute (int)
    ``xi_start`` / ``xi_round`` (``prune_start`` / ``prune_end``) so that it keeps its place in the
    RL training phase: ``learning_starts`` stays, and the gradient steps before the point keep
    their fraction of all gradient steps (the paper's xi_start=200k of 1M, after 190k of 990k
    gradient steps, becomes 13,838 of 30,000: after 3,838 of 20,000).

    Scaling env steps instead would put it at 6,000, before the first gradient step at 10,000:
    the thetas would then learn from the first update on, while the critics know nothing yet,
    and Adam drives them down at full speed whatever nu is (docs/CALIBRATION.md, "The RL side").
    Fractions (floats) are the user's proportions of the budget and stay as they are."""
    n_timesteps = hyperparams.pop("n_timesteps", None)
    if not n_timesteps or int(n_timesteps) == timesteps:
        return
    n_timesteps = int(n_timesteps)
    starts = int(hyperparams.get("learning_starts", 100))  # SB3's default
    for key in ("xi_start", "xi_round", "prune_start", "prune_end"):
        value = hyperparams.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        hyperparams[key] = schedule_point(value, starts, n_timesteps, timesteps)
        print(
            f"  {key}: {value:,} env steps of the entry's {n_timesteps:,} -> {hyperparams[key]:,} "
            f"of this run's {timesteps:,} (learning_starts {starts:,})"
        )


def schedule_point(value: int, learning_starts: int, n_timesteps: int, timesteps: int) -> int:
    """Where env step ``value`` of an ``n_timesteps`` budget goes in a ``timesteps`` budget
    (:func:`scale_schedule`): the same fraction of the gradient steps after ``learning_starts``."""
    if learning_starts <= value and learning_starts < min(timesteps, n_timesteps):
        return learning_starts + round(
            (value - learning_starts) * (timesteps - learning_starts) / (n_timesteps - learning_starts)
        )
    # a point before the first update, or a budget without updates: env steps, proportionally
    return round(value * timesteps / n_timesteps)


def param_counts(model: BaseAlgorithm) -> dict[str, int]:
    """deploy / train parameters (SPEC section 7); for stock SAC: actor / actor + critics; for the
    masked peers, the same without their masked weights."""
    if hasattr(model, "param_counts"):  # this package's algorithms count themselves
        return model.param_counts()
    actor = count_params(model.actor)  # type: ignore[attr-defined]
    return {"deploy": actor, "train": actor + count_params(model.critic)}  # type: ignore[attr-defined]


def paper_param_counts(model: BaseAlgorithm) -> dict[str, int]:
    """Table 4's convention: train without f_pred and with SAC-v1's V network (on the actor's input,
    with the first critic's hidden widths); deploy unchanged."""
    if isinstance(model, SAC_OFEXi):
        return model.paper_param_counts()
    counts = param_counts(model)
    if not isinstance(model, SAC):  # TD3, TQC, CrossQ and their OFEXi versions: no V network to add
        return counts
    critics = getattr(model.critic, "members", [model.critic])  # type: ignore[attr-defined]  # EauDeSAC's population
    critic = critics[0].q_networks[0]
    hidden = [m.out_features for m in critic if isinstance(m, nn.Linear)][:-1]
    v_net = mlp_param_count(model.actor.features_dim, hidden, 1)  # type: ignore[attr-defined]
    return {"deploy": counts["deploy"], "train": counts["train"] + v_net}


class SizeHistory(BaseCallback):
    """Every ``every`` steps: parameters, and for SAC_OFEXi units alive and mean theta per net."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self.rows: list[dict[str, Any]] = []

    def state_dict(self) -> dict[str, Any]:
        """What a run checkpoint keeps of this callback (its rows)."""
        return {"n_calls": self.n_calls, "rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.n_calls, self.rows = state["n_calls"], state["rows"]

    def _on_training_start(self) -> None:
        if not self.rows:  # a resumed run has its rows already
            self._record()

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            self._record()
        return True

    def _record(self) -> None:
        row: dict[str, Any] = {"timesteps": self.num_timesteps, **param_counts(self.model)}
        if is_ofexi(self.model):
            policy = self.model.policy
            nets = {
                "phi_o": policy.ofe.phi_o,
                "phi_oa": policy.ofe.phi_oa,
                "actor": policy.actor,
                "critic": policy.critic,
            }
            for name, net in nets.items():
                thetas = [g.theta.detach() for g in xi_gates(net) if g.n_units > 0]
                row[f"theta_{name}"] = float(th.cat(thetas).mean()) if thetas else float("nan")
                row[f"units_{name}"] = sum(g.n_units for g in xi_gates(net))
            if self.model.config.use_xi:  # alive thetas neither on (>= 0.9) nor off (< theta_tol)
                stats = theta_stats(self.model.policy.xi_layers(), self.model.config.theta_tol)
                row.update({f"undecided_{net}": share for net, share in undecided_by_network(stats).items()})
        elif hasattr(self.model, "sparsities"):  # the masked peers
            sparsities = self.model.sparsities()
            for name in ("actor", "critic"):
                if name in sparsities:
                    row[f"sparsity_{name}"] = sparsities[name]
        self.rows.append(row)


@dataclass
class RunSpec:
    method: str
    env_id: str
    seed: int
    timesteps: int
    out_dir: str
    eval_freq: int | None = None
    eval_episodes: int = EVAL_EPISODES
    device: str = "cpu"
    hyperparams_dir: str | None = None
    progress_bar: bool = False
    threads: int | None = None
    checkpoint_steps: int = CHECKPOINT_STEPS
    checkpoint_seconds: float = CHECKPOINT_SECONDS
    #: keyword arguments that override the YAML entry (``train --deploy-budget``, ...)
    overrides: dict[str, Any] = field(default_factory=dict)
    #: time the exported policy and the training step at the end (:mod:`sb3_ofexi.harness.measure`)
    measure_speed: bool = True

    @property
    def run_dir(self) -> pathlib.Path:
        return pathlib.Path(self.out_dir) / self.method / f"seed{self.seed}"

    def identity(self) -> dict[str, Any]:
        """What makes two specs the same run (how it is executed does not count)."""
        keys = ("method", "env_id", "seed", "timesteps", "eval_freq", "eval_episodes", "overrides")
        return {k: getattr(self, k) for k in keys}


def finished_summary(spec: RunSpec) -> dict[str, Any] | None:
    """The run's ``summary.json`` if it finished; a ValueError if it finished with other settings."""
    path = spec.run_dir / "summary.json"
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    saved = {k: summary.get(k, {} if k == "overrides" else None) for k in spec.identity()}
    if saved != spec.identity():
        differences = {k: (saved[k], v) for k, v in spec.identity().items() if saved[k] != v}
        raise ValueError(
            f"{spec.run_dir} holds a finished run with other settings (saved, asked): {differences}; "
            "use another --out, or delete that folder to run it again"
        )
    return summary


#: rl-zoo3's exploration noise keys (TD3's entries) -> SB3's action noise classes
NOISE_TYPES = {"normal": NormalActionNoise, "ornstein-uhlenbeck": OrnsteinUhlenbeckActionNoise}


def action_noise(hyperparams: dict[str, Any], n_actions: int) -> dict[str, Any]:
    """``noise_type`` / ``noise_std`` of an rl-zoo3 entry as ``action_noise=``, as rl-zoo3 builds it."""
    hyperparams = dict(hyperparams)
    noise_type, noise_std = hyperparams.pop("noise_type", None), hyperparams.pop("noise_std", None)
    if noise_type is None:
        return hyperparams
    if noise_type not in NOISE_TYPES:
        raise ValueError(f"noise_type={noise_type!r}: accepted: {', '.join(NOISE_TYPES)}")
    sigma = float(noise_std or 0.0) * np.ones(n_actions)
    hyperparams["action_noise"] = NOISE_TYPES[noise_type](mean=np.zeros(n_actions), sigma=sigma)
    return hyperparams


def _build_fresh(spec: RunSpec, algo: type[BaseAlgorithm], hyperparams: dict[str, Any]):
    env = make_vec_env(spec.env_id, n_envs=1, seed=spec.seed)
    eval_env = make_vec_env(spec.env_id, n_envs=1, seed=spec.seed + 10_000)
    hyperparams = action_noise(hyperparams, int(np.prod(env.action_space.shape)))  # type: ignore[arg-type]
    model = algo(env=env, seed=spec.seed, device=spec.device, verbose=0, **hyperparams)
    return model, env, eval_env, {"wall_s": 0.0, "sittings": 0, "callbacks": {}}


def _build_resumed(spec: RunSpec, algo: type[BaseAlgorithm], checkpoint: pathlib.Path):
    envs = pickle.loads((checkpoint / "envs.pkl").read_bytes())
    env = env_restore(envs["train"]) if envs["train"] else make_vec_env(spec.env_id, n_envs=1, seed=spec.seed)
    eval_env = (
        env_restore(envs["eval"]) if envs["eval"] else make_vec_env(spec.env_id, n_envs=1, seed=spec.seed + 10_000)
    )
    model = algo.load(checkpoint / "model.zip", env=env, device=spec.device, force_reset=envs["train"] is None)
    model.load_replay_buffer(checkpoint / "replay_buffer.pkl")
    with open(checkpoint / "state.pkl", "rb") as handle:
        state = pickle.load(handle)
    return model, env, eval_env, state


def _run_hyperparams(spec: RunSpec) -> dict[str, Any]:
    """The run's keyword arguments: its YAML entry, the spec's overrides, schedules scaled to its length."""
    hyperparams = load_hyperparams(spec.method, spec.env_id, spec.hyperparams_dir)
    hyperparams.update(spec.overrides)
    scale_schedule(hyperparams, spec.timesteps)
    return hyperparams


def rebuild_model(summary: dict[str, Any]) -> BaseAlgorithm | None:
    """A model built afresh from a finished run's settings (its summary), to time a run whose
    ``model.zip`` did not outlive its machine: ``None`` unless the new model has the run's final
    parameter counts, i.e. nothing was pruned and the settings still build the same networks
    (a dense network costs the same whatever its weights; a pruned one needs its model)."""
    names = RunSpec.__dataclass_fields__
    spec = RunSpec(**{**{k: v for k, v in summary.items() if k in names}, "device": "cpu"})
    if spec.hyperparams_dir and not (
        pathlib.Path(spec.hyperparams_dir).is_absolute() and pathlib.Path(spec.hyperparams_dir).is_dir()
    ):
        return None  # a published summary keeps only the folder's name: which files it read is unknown
    _, algo = METHODS[spec.method]
    model, env, eval_env, _ = _build_fresh(spec, algo, _run_hyperparams(spec))
    eval_env.close()
    if param_counts(model) != summary.get("params"):
        env.close()
        return None
    return model


def train_one(spec: RunSpec) -> dict[str, Any]:
    """Train, evaluate every ``eval_freq`` steps, save; write ``summary.json`` and return it.

    Resumable: a finished run (``summary.json``) is returned as it is; an unfinished one
    continues from its newest checkpoint (:mod:`sb3_ofexi.harness.checkpoint`).
    """
    summary = finished_summary(spec)
    if summary is not None:
        return summary
    if spec.threads:
        th.set_num_threads(spec.threads)
    if spec.timesteps <= 0:
        raise ValueError(f"timesteps={spec.timesteps}: accepted: an int > 0")
    run_dir = spec.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "failed.json").unlink(missing_ok=True)  # retried: running again (a new failure writes it anew)
    _, algo = METHODS[spec.method]
    if spec.overrides and not is_ofexi(algo):  # size budgets are the OFEXi algorithms'
        accepted = [m for m, (_, cls) in METHODS.items() if is_ofexi(cls)]
        raise ValueError(
            f"{sorted(spec.overrides)} apply to the OFEXi methods only, not to {spec.method!r} "
            f"({algo.__name__}): accepted methods: {accepted}"
        )
    hyperparams = _run_hyperparams(spec)
    eval_freq = spec.eval_freq or default_eval_freq(spec.timesteps)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        model, env, eval_env, state = _build_fresh(spec, algo, hyperparams)
    else:
        model, env, eval_env, state = _build_resumed(spec, algo, checkpoint)
    evaluation = EvalCallback(
        eval_env,
        eval_freq=eval_freq,
        n_eval_episodes=spec.eval_episodes,
        log_path=str(run_dir),
        deterministic=True,
        verbose=0,
    )
    history = SizeHistory(eval_freq)
    callbacks: dict[str, BaseCallback] = {"evaluation": evaluation, "history": history}
    if is_ofexi(model) and model.config.use_xi and model.config.prune_freq:
        callbacks["pruning"] = PruningCallback(model.config.prune_freq)  # its prune cadence is checkpointed
    for name, saved in state["callbacks"].items():
        load_callback_state(callbacks[name], saved)
    start = time.perf_counter()
    wall_before = state["wall_s"]

    def run_state() -> dict[str, Any]:
        return {
            "wall_s": wall_before + time.perf_counter() - start,
            "sittings": state["sittings"] + 1,
            "callbacks": {name: callback_state(cb) for name, cb in callbacks.items()},
        }

    saver = RunCheckpoint(
        run_dir,
        {"train": env, "eval": eval_env},
        run_state,
        spec.checkpoint_steps,
        spec.checkpoint_seconds,
        spec.timesteps,
        evaluation,
    )
    if checkpoint is not None:
        set_rng_state(model, state["rng"])  # after load(), which reseeds
    remaining = spec.timesteps - model.num_timesteps
    model.learn(
        remaining,
        callback=[*callbacks.values(), saver],
        progress_bar=spec.progress_bar,
        reset_num_timesteps=checkpoint is None,
    )
    wall = run_state()["wall_s"]
    model.save(run_dir / "model")

    timesteps = np.asarray(evaluation.evaluations_timesteps)
    returns = np.asarray(evaluation.evaluations_results).mean(axis=1)
    gated = is_ofexi(model) and model.config.use_xi
    summary = {
        **asdict(spec),
        "algo": algo.__name__,
        "hyperparams": {
            k: repr(v) if not isinstance(v, (int, float, str, bool)) else v for k, v in hyperparams.items()
        },
        "wall_s": wall,
        "sittings": state["sittings"] + 1,
        "eval_timesteps": timesteps.tolist(),
        "eval_returns": returns.tolist(),
        "params": param_counts(model),
        "params_paper": paper_param_counts(model),
        "units": model.unit_counts() if is_ofexi(model) else None,
        "budgets": _budget_summary(model),
        "sparsities": model.sparsities() if hasattr(model, "sparsities") else None,
        "history": history.rows,
        # the thetas' schedule as it happened and the per-layer diagnostics (SAC_OFEXi with gates)
        "xi_record": model.xi_record if gated else None,
        "theta_history": model.theta_history if gated else None,
    }
    summary.update(score_run(summary, spec.hyperparams_dir))
    # last: timing runs gradient steps, which change the in-memory model (never model.zip); every
    # number above describes the saved model
    summary["speed"] = measure_speed(model) if spec.measure_speed else None
    env.close()
    eval_env.close()
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, run_dir / "summary.json")  # the run counts as finished from here on
    saver.write_progress("done")
    remove_checkpoints(run_dir)  # they hold the replay buffer; a finished run needs none
    (run_dir / "failed.json").unlink(missing_ok=True)
    return summary


def rounding_step(summary: dict[str, Any]) -> float | None:
    """The env step at which the run rounded its thetas (``None``: no gates, or never rounded).

    The train() call that rounds comes after that step's evaluation (SB3's EvalCallback runs in
    collect_rollouts), so an evaluation at exactly this step scores the unrounded network."""
    record = summary.get("xi_record") or {}
    if "rounded_from_step" in record:
        return float(record["rounded_from_step"])
    if not uses_gates(summary):
        return None
    try:  # SAC_OFEXi's default, 0.8; an int is env steps, a float a fraction of the run
        point = parse_schedule_point((summary.get("hyperparams") or {}).get("xi_round", 0.8), "xi_round")
    except ValueError:
        return None
    if isinstance(point, float) and point >= 1.0:  # never rounded
        return None
    return env_steps(point, summary["timesteps"])


def uses_gates(summary: dict[str, Any]) -> bool:
    """Whether a run was an OFEXi algorithm with its gates on (the OFE baselines are not)."""
    if summary.get("algo") not in OFEXI_NAMES or not summary.get("units"):
        return False
    hyperparams = summary.get("hyperparams") or {}
    if "use_xi" in hyperparams:
        return bool(hyperparams["use_xi"])
    return str(hyperparams.get("preset", "prune-b")) not in ("ofe", "ofe-big")


def score_window_start(summary: dict[str, Any], hyperparams_dir: str | None = None) -> float:
    """Evaluations strictly after this env step count for the score: the step at which prune-b
    rounds its thetas in a run of this length (from its YAML entry for the task, scaled as
    :func:`scale_schedule` does; 80% of the run without one), or the run's own rounding step
    if that is later. The same window for every method of a task and run length."""
    timesteps = int(summary["timesteps"])
    try:
        entry = load_hyperparams("prune-b", summary["env_id"], hyperparams_dir)
    except ValueError:
        entry = {}
    point = parse_schedule_point(entry.get("xi_round", 1.0 - SCORE_WINDOW), "xi_round")
    if isinstance(point, int):  # env steps of the entry's budget, moved to this run's
        starts, n_timesteps = int(entry.get("learning_starts", 100)), int(entry.get("n_timesteps") or timesteps)
        start = float(schedule_point(point, starts, n_timesteps, timesteps))
    else:
        start = env_steps(point, timesteps)
    own = rounding_step(summary)
    return max(start, own) if own is not None else start


def score_run(summary: dict[str, Any], hyperparams_dir: str | None = None) -> dict[str, Any]:
    """``score`` (the best evaluation strictly after :func:`score_window_start`), ``final_return``
    (the last evaluation), ``score_after`` (the window's start) and ``score_evals`` (how many
    evaluations the window holds): what the user gets, the rounded network, for every method alike."""
    timesteps = np.asarray(summary["eval_timesteps"], dtype=float)
    returns = np.asarray(summary["eval_returns"], dtype=float)
    after = score_window_start(summary, hyperparams_dir)
    window = timesteps > after
    return {
        "score": float(returns[window].max()) if window.any() else float("nan"),
        "final_return": float(returns[-1]) if len(returns) else float("nan"),
        "score_after": after,
        "score_evals": int(window.sum()),
    }


def _budget_summary(model: BaseAlgorithm) -> dict[str, Any] | None:
    """Each budget in parameters, the size reached and whether it was met (``None``: no budget)."""
    if not is_ofexi(model) or not model.config.has_budget:
        return None
    counts = model.param_counts()
    summary: dict[str, Any] = {
        kind: {
            "budget": budget,
            "params": counts[kind],
            "met": counts[kind] <= budget,
            "nu_multiplier": model.theta_control.nu_multipliers[kind],
        }
        for kind, budget in model.theta_control.budgets().items()
    }
    summary["dropped_at_rounding"] = model.theta_control.budget_dropped_units
    return summary


def run_safely(spec: RunSpec) -> dict[str, Any]:
    """:func:`train_one`, but an exception is recorded in ``failed.json`` (with its traceback)
    and returned as ``{"status": "failed", ...}`` instead of stopping the sweep."""
    try:
        return {"status": "done", **train_one(spec)}
    except Exception as error:  # noqa: BLE001 -- one failing run must not stop the others
        record = {
            **asdict(spec),
            "status": "failed",
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(),
            "time": time.time(),
        }
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        (spec.run_dir / "failed.json").write_text(json.dumps(record, indent=1))
        return record
