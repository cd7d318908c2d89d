"""What a saved model, or a run that is still training, holds now: ``sb3-ofexi inspect PATH``.

A run of the Hopper study trains for a day; whether its thetas are moving, which layers lose
units and how large the networks are now should not wait for its summary. ``inspect`` reads a
model file, the newest checkpoint of a run's folder or a parked checkpoint (read only: a running
run is not disturbed), finds the class that saved it, and reports the env steps, the theta
schedule, the sizes against those at the start, per layer the units alive and the share of
undecided thetas, and the newest row of the theta diagnostics (docs/COMPLEXITY.md).
"""

from __future__ import annotations

import io
import json
import math
import pathlib
import zipfile
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import json_to_data

from sb3_ofexi.common.diagnostics import theta_stats, undecided_by_network
from sb3_ofexi.harness.checkpoint import POINTER, latest_checkpoint
from sb3_ofexi.harness.registry import ALGOS, is_ofexi

#: how ``inspect`` and ``export`` find the class of a file (``--algo auto``)
AUTO = "auto"


def model_file(path: str | pathlib.Path) -> pathlib.Path:
    """The model a path means: a ``.zip`` itself; in a run's folder its newest checkpoint's model
    (or ``model.zip`` once finished); in a parked folder its parked model."""
    path = pathlib.Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"No such model file or run folder: {path}")
    if (path / POINTER).exists() and (checkpoint := latest_checkpoint(path)) is not None:
        return checkpoint / "model.zip"
    if (path / "model.zip").is_file():
        return path / "model.zip"
    parked = path / "parked.json"
    if parked.is_file():
        return path / json.loads(parked.read_text())["files"]["model"]
    raise FileNotFoundError(
        f"{path} holds no model: accepted: a model .zip, a run's folder (checkpoint.json or model.zip), "
        "or a parked folder (parked.json)"
    )


def read_model(path: str | pathlib.Path) -> tuple[pathlib.Path, bytes]:
    """:func:`model_file` and its bytes: a training run deletes its older checkpoint once it has
    written a newer one, so a read that loses that race looks again."""
    for _ in range(5):
        file = model_file(path)
        try:
            return file, file.read_bytes()
        except FileNotFoundError:
            continue
    raise FileNotFoundError(f"{path}: its checkpoints kept changing while being read; try again")


def algo_of(model: str | pathlib.Path | bytes) -> str:
    """The registry name (``sac_ofexi``, ``td3``, ...) of the class that saved a model (a file or
    its bytes): the OFEXi algorithm named in its policy_kwargs, else the one whose policy it saved."""
    try:
        with zipfile.ZipFile(io.BytesIO(model) if isinstance(model, bytes) else model) as archive:
            data = json_to_data(archive.read("data").decode())
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise ValueError(f"not a model saved by SB3's save() ({type(error).__name__}: {error})") from error
    saved_by = (data or {}).get("policy_kwargs", {}).get("ofexi_algorithm")
    if saved_by is not None:
        for name, algo in ALGOS.items():
            if algo.__name__ == saved_by:
                return name
    policy_class = (data or {}).get("policy_class")
    if isinstance(policy_class, type):
        for match in (lambda policy: policy_class is policy, lambda policy: issubclass(policy_class, policy)):
            for name, algo in ALGOS.items():
                if any(match(policy) for policy in algo.policy_aliases.values()):
                    return name
    raise ValueError(
        f"cannot tell which algorithm saved it (policy class {policy_class!r}): accepted: a model saved by "
        f"{', '.join(algo.__name__ for algo in ALGOS.values())}; or name it with --algo"
    )


def load_model(model: str | pathlib.Path | bytes, algo: str = AUTO) -> BaseAlgorithm:
    """Load a model (a file or its bytes) on the CPU with the class ``algo`` names (``auto``:
    :func:`algo_of`)."""
    if algo != AUTO and algo not in ALGOS:
        raise ValueError(f"--algo {algo!r}: accepted: {AUTO}, {', '.join(ALGOS)}")
    if not isinstance(model, bytes):
        if not pathlib.Path(model).is_file():
            raise FileNotFoundError(f"No such model file: {model}")
        try:
            return load_model(pathlib.Path(model).read_bytes(), algo)
        except ValueError as error:
            raise ValueError(f"{model}: {error}") from error
    name = algo_of(model) if algo == AUTO else algo
    try:
        return ALGOS[name].load(io.BytesIO(model), device="cpu")
    except ValueError:
        raise
    except Exception as error:  # another class's file: shapes, keys or pickled classes do not fit
        raise ValueError(
            f"{ALGOS[name].__name__} cannot load it ({type(error).__name__}: {error}); "
            f"--algo {AUTO} reads the class from the file"
        ) from error


def describe(model: BaseAlgorithm) -> dict[str, Any]:
    """What ``inspect`` reports, as plain data (``--json``)."""
    from sb3_ofexi.harness.runs import param_counts

    total = int(getattr(model, "_total_timesteps", 0) or 0)
    info: dict[str, Any] = {
        "algo": type(model).__name__,
        "env_steps": int(model.num_timesteps),
        "total_timesteps": total or None,
        "gradient_updates": int(getattr(model, "_n_updates", 0)),
        "params": param_counts(model),
    }
    if hasattr(model, "sparsities"):  # PolyPrune's and EauDeSAC's masks
        info["sparsities"] = model.sparsities()
    if not is_ofexi(model):
        return info
    control, config = model.theta_control, model.config  # type: ignore[attr-defined]
    if total:
        start, round_at = model.schedule_steps(total)  # type: ignore[attr-defined]
    else:  # saved before learn(): only points given in env steps (ints) are known
        start, round_at = (p if isinstance(p, int) else None for p in (config.xi_start, config.xi_round))
        round_at = math.inf if config.never_rounds else round_at
    layers = theta_stats(model.policy.xi_layers(), config.theta_tol)  # type: ignore[operator]
    newest = control.history[-1]["timesteps"] if control.history else None
    info.update(
        preset=config.preset,
        use_xi=bool(config.use_xi),
        phase=control.phase,
        xi_start_step=None if start is None else int(start),
        xi_round_step=None if round_at is None or math.isinf(round_at) else int(round_at),
        never_rounds=bool(config.never_rounds),
        record=control.record,
        params_at_start=control.initial_param_counts,
        layers=layers,
        undecided=undecided_by_network(layers),
        diagnostics=[row for row in control.history if row["timesteps"] == newest],
    )
    return info


def _plain(value: Any) -> Any:
    """JSON's values: NaN and infinities (a layer without units, Adam before its first step) as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) or hasattr(value, "item"):  # numpy scalars too
        value = value.item() if hasattr(value, "item") else value
        return None if isinstance(value, float) and not math.isfinite(value) else value
    return value


def _count(n: float | None) -> str:
    return "-" if n is None else f"{n:,.0f}"


def _schedule_line(info: dict[str, Any]) -> str:
    record, start, round_at = info["record"], _count(info["xi_start_step"]), _count(info["xi_round_step"])
    if not info["use_xi"]:
        return "thetas: none (this model has no xi gates: an OFE model)"
    if info["phase"] == "rounded":
        return (
            f"thetas: rounded to 0/1 at env step {_count(record.get('rounded_from_step'))} "
            f"(update {_count(record.get('rounded_from_update'))}); units at 0 removed, the gates fixed"
        )
    rounding = "never rounded (xi_round=1.0)" if info["never_rounds"] else f"rounded at env step {round_at} (xi_round)"
    if info["phase"] == "learning":
        return (
            f"thetas: learning since env step {_count(record.get('learning_from_step'))} "
            f"(update {_count(record.get('learning_from_update'))}); {rounding}"
        )
    return f"thetas: frozen at 1 until env step {start} (xi_start), then learning; {rounding}"


def render(info: dict[str, Any], source: str) -> str:
    """``describe``'s data as the text ``inspect`` prints."""
    total = f" of {info['total_timesteps']:,}" if info["total_timesteps"] else ""
    preset = f", preset {info['preset']}" if info.get("preset") else ""
    lines = [
        f"{source}: {info['algo']}{preset}",
        f"env steps {info['env_steps']:,}{total}; gradient updates {info['gradient_updates']:,}",
    ]
    live = info.get("progress")
    if live and live.get("timesteps") is not None:
        rate = f", {live['steps_per_s']:.1f} env steps/s" if live.get("steps_per_s") else ""
        last = f", last evaluation {live['last_eval']:.1f}" if live.get("last_eval") is not None else ""
        lines.append(f"the run ({live.get('status', '?')}): env step {live['timesteps']:,}{rate}{last}")
    at_start = info.get("params_at_start") or {}
    for kind in ("deploy", "train"):
        now, then = info["params"][kind], at_start.get(kind)
        share = f" ({now / then:.0%} of {then:,} at the start)" if then else ""
        lines.append(f"{kind} params {now:,}{share}")
    for name, sparsity in (info.get("sparsities") or {}).items():
        lines.append(f"sparsity {name}: {sparsity:.1%}")
    if "phase" not in info:
        return "\n".join(lines)
    lines.append(_schedule_line(info))
    if not info["use_xi"]:
        return "\n".join(lines)
    before = info["record"].get("before_rounding")
    if before:
        shares = ", ".join(f"{net} {share:.0%}" for net, share in before["undecided"].items())
        lines.append(f"undecided just before rounding: {shares}")
    diagnostics = {row["layer"]: row for row in info["diagnostics"]}
    header = "| layer | units | alive | theta mean | undecided |"
    if diagnostics:
        # |task grad| against push says which force is larger, the signed mean (< 0: the task wants the
        # units on) whether the task's pull is consistent: a noisy task gradient lets a smaller push win
        header += " task grad | signed | push | Adam rate |"
        first = info["diagnostics"][0]
        lines.append(f"diagnostics of env step {first['timesteps']:,} ({first['updates']:,} updates):")
    lines += ["", header, "|" + "---|" * (header.count("|") - 1)]
    for name, row in info["layers"].items():
        cells = [name, f"{row['units']}", f"{row['alive']}", f"{row['theta_mean']:.3f}", f"{row['undecided']:.0%}"]
        if diagnostics:
            diag = diagnostics.get(name, {})
            cells += [
                f"{diag.get(key, math.nan):.3g}" for key in ("task_grad", "task_grad_signed", "push", "adam_rate")
            ]
        lines.append("| " + " | ".join(cells) + " |")
    shares = ", ".join(f"{net} {share:.0%}" for net, share in info["undecided"].items())
    lines += ["", f"undecided now (alive thetas in [theta_tol, 0.9)): {shares}"]
    return "\n".join(lines)


def inspect_path(path: str | pathlib.Path, algo: str = AUTO, as_json: bool = False) -> str:
    """The report of ``sb3-ofexi inspect PATH``."""
    file, data = read_model(path)
    try:
        info = describe(load_model(data, algo))
    except ValueError as error:
        raise ValueError(f"{file}: {error}") from error
    progress = pathlib.Path(path) / "progress.json"  # a run's folder: where the run is now, past its checkpoint
    if progress.is_file():
        try:
            info["progress"] = json.loads(progress.read_text())
        except ValueError:  # being rewritten this instant: the checkpoint's numbers stand alone
            pass
        else:
            if (pathlib.Path(path) / "parked.json").is_file():
                info["progress"]["status"] = "when parked"
    if as_json:
        return json.dumps(_plain({"model": str(file), **info}), indent=1, allow_nan=False)
    return render(info, str(file))
