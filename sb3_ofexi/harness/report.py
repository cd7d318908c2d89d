"""Comparison report from run directories: Tables 3-4 of the paper and Figs. 3 and 5, plus theta over time."""

from __future__ import annotations

import json
import os
import pathlib
import shlex
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sb3_ofexi.common.diagnostics import network_of
from sb3_ofexi.common.schedule import env_steps, parse_schedule_point
from sb3_ofexi.harness.measure import run_speed
from sb3_ofexi.harness.registry import METHODS
from sb3_ofexi.harness.runs import (
    load_hyperparams,
    rounding_step,
    schedule_point,
    score_run,
    uses_gates,
)


@dataclass
class Section:
    """One section of a report: its title and its Markdown body (the lines under the heading)."""

    title: str
    body: list[str]

    def markdown(self, level: int = 2) -> list[str]:
        return [f"{'#' * level} {self.title}", *self.body]


@dataclass
class Report:
    """A task folder's report as data; :meth:`markdown` renders it (``report.md``), and the results
    page takes its sections from here (nothing re-reads the Markdown)."""

    path: pathlib.Path
    title: str
    intro: list[str]
    failed: Section | None = None
    sections: list[Section] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"# {self.title}", *self.intro]
        for section in [self.failed] if self.failed else []:
            lines += section.markdown()
        for section in self.sections:
            lines += section.markdown()
        return "\n".join([*lines, *[f"![{png}]({png})" for png in self.figures], ""])


#: The paper's Tables 3 and 4 (its MuJoCo v2 tasks): score, dR, tR, deploy / train params in thousands
PAPER_TABLES: dict[str, dict[str, tuple[int, int | None, int | None, int, int]]] = {
    "HalfCheetah": {
        "sac": (12757, 42, 35, 74, 289),
        "sac-big": (15534, 621, 524, 1081, 4300),
        "ofe": (16609, 100, 100, 174, 821),
        "ofe-big": (17299, 739, 765, 1286, 6276),
        "prune-a": (16774, 87, 179, 152, 1466),
        "prune-b": (16033, 16, None, 28, 390),
        "prune-c": (13593, 12, 29, 21, 236),
    },
    "Ant": {
        "sac": (4974, 53, 49, 100, 389),
        "sac-big": (6345, 635, 588, 1182, 4695),
        "ofe": (7161, 100, 100, 187, 799),
        "ofe-big": (7608, 565, None, 1057, 5114),
        "prune-a": (7229, 130, 139, 242, 1111),
        "prune-b": (6517, 39, 72, 73, 576),
        "prune-c": (5829, 22, 33, 41, 266),
    },
    "Hopper": {
        "sac": (3197, 51, 43, 71, 280),
        "sac-big": (3534, 773, 656, 1069, 4264),
        "ofe": (3548, 100, 100, 139, 651),
        "ofe-big": (3699, 665, 702, 924, 4573),
        "prune-a": (3659, 39, 86, 55, 556),
        "prune-b": (3515, 10, 38, 15, 246),
        "prune-c": (3470, 6, 16, 8, 102),
    },
    "Walker2d": {
        "sac": (3998, 52, 44, 74, 289),
        "sac-big": (4976, 759, 649, 1081, 4301),
        "ofe": (5468, 100, 100, 143, 663),
        "ofe-big": (5490, 653, 696, 934, 4613),
        "prune-a": (5679, 253, 330, 361, 2187),
        "prune-b": (5152, 47, 88, 67, 586),
        "prune-c": (4803, 35, 59, 50, 389),
    },
}
PNG_CURVES = "learning_curves.png"
PNG_UNITS = "units_per_layer.png"
PNG_THETA = "theta_over_time.png"
PNG_SPARSITY = "sparsity_over_time.png"
PNG_DIAGNOSTICS = "theta_diagnostics.png"
#: IQM and bootstrap CIs from this many seeds up (rliable's advice); below it, per-seed values and their range
MIN_SEEDS_IQM = 5


def load_failures(out_dir: str | pathlib.Path) -> list[dict[str, Any]]:
    """``failed.json`` of every run under ``out_dir`` that has not finished since."""
    failures = []
    for path in sorted(pathlib.Path(out_dir).glob("*/seed*/failed.json")):
        if not (path.parent / "summary.json").exists():
            failures.append(json.loads(path.read_text()))
    return failures


def load_runs(
    out_dir: str | pathlib.Path, allow_empty: bool = False, hyperparams_dir: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """``summary.json`` of every run under ``out_dir``, grouped by method in METHODS order, each
    scored again from its evaluations (:func:`~sb3_ofexi.harness.runs.score_run`), so a summary
    written by an older release is scored as today's are."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(pathlib.Path(out_dir).glob("*/seed*/summary.json")):
        summary = json.loads(path.read_text())
        summary.update(score_run(summary, hyperparams_dir))
        summary["speed"] = run_speed(path.parent, summary)  # speed.json (re-measured) over the run's own
        runs.setdefault(summary["method"], []).append(summary)
    if not runs and not allow_empty:
        raise ValueError(f"No runs in {out_dir}: expected METHOD/seedN/summary.json written by 'sb3-ofexi train'")
    envs = {s["env_id"] for group in runs.values() for s in group}
    if len(envs) != 1:
        raise ValueError(f"{out_dir} mixes environments {sorted(envs)}: one report covers one env")
    order = {m: i for i, m in enumerate(METHODS)}
    return dict(sorted(runs.items(), key=lambda kv: order.get(kv[0], len(order))))


def ofe_baseline_counts(runs: dict[str, list[dict[str, Any]]], hyperparams_dir: str | None) -> dict[str, Any] | None:
    """OFE's deploy/train parameters for this env (and ``train_paper``, Table 4's convention):
    from an ``ofe`` run, else built from its YAML."""
    if "ofe" in runs:
        first = runs["ofe"][0]
        return {**first["params"], "train_paper": first.get("params_paper", {}).get("train")}
    env_id = next(iter(runs.values()))[0]["env_id"]
    try:
        from sb3_ofexi.sac_ofexi import SAC_OFEXi

        hyperparams = load_hyperparams("ofe", env_id, hyperparams_dir)
        hyperparams.pop("n_timesteps", None)
        hyperparams["buffer_size"] = 1
        model = SAC_OFEXi(env=env_id, device="cpu", **hyperparams)
        return {**model.param_counts(), "train_paper": model.paper_param_counts()["train"]}
    except ValueError:
        return None


def _iqm_with_ci(scores: dict[str, np.ndarray]) -> dict[str, tuple[float, float, float]]:
    """IQM and its 95% stratified-bootstrap interval (rliable), for methods with >= 5 seeds."""
    from rliable import library as rly
    from rliable import metrics

    eligible = {m: s.reshape(-1, 1) for m, s in scores.items() if len(s) >= MIN_SEEDS_IQM}
    if not eligible:
        return {}
    np.random.seed(0)  # rliable's bootstrap draws from numpy's global generator
    points, intervals = rly.get_interval_estimates(eligible, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=2000)
    return {m: (float(points[m][0]), float(intervals[m][0, 0]), float(intervals[m][1, 0])) for m in eligible}


def _ratio(value: float, base: float | None) -> str:
    return f"{100 * value / base:.0f}%" if base else "n/a"


def _values(values: np.ndarray) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def tables(runs: dict[str, list[dict[str, Any]]], baseline: dict[str, int] | None) -> tuple[str, str, dict]:
    """Markdown of the Table-3-like and Table-4-like tables, and the numbers behind them.

    Scores are per seed (and their mean); IQM with its bootstrap CI only from MIN_SEEDS_IQM seeds
    up, where it is more than the mean and the range of a handful of values."""
    scores = {m: np.array([s["score"] for s in group]) for m, group in runs.items()}
    finals = {m: np.array([s["final_return"] for s in group]) for m, group in runs.items()}
    iqm = _iqm_with_ci(scores)
    numbers: dict[str, Any] = {}
    table3 = [
        (
            f"| method | seeds | score per seed | mean | IQM [95% CI] ({MIN_SEEDS_IQM}+ seeds) or range | "
            "final return per seed | dR | tR | tR (paper conv.) |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    table4 = ["| method | deploy params (k) | train params (k) | train params, paper conv. (k) |", "|---|---|---|---|"]
    for method, group in runs.items():
        deploy = float(np.mean([s["params"]["deploy"] for s in group]))
        train = float(np.mean([s["params"]["train"] for s in group]))
        papers = [s["params_paper"]["train"] for s in group if s.get("params_paper")]
        train_paper = float(np.mean(papers)) if len(papers) == len(group) else None
        score = scores[method]
        if method in iqm:
            spread = "IQM {:.1f} [{:.1f}, {:.1f}]".format(*iqm[method])
        else:
            spread = f"range {np.nanmin(score):.1f} to {np.nanmax(score):.1f}" if len(score) > 1 else "(1 seed)"
        d_ratio = _ratio(deploy, baseline["deploy"] if baseline else None)
        t_ratio = _ratio(train, baseline["train"] if baseline else None)
        base_paper = baseline.get("train_paper") if baseline else None
        tp_ratio = _ratio(train_paper, base_paper) if train_paper is not None else "n/a"
        table3.append(
            f"| {method} | {len(group)} | {_values(score)} | {score.mean():.1f} | {spread} | "
            f"{_values(finals[method])} | {d_ratio} | {t_ratio} | {tp_ratio} |"
        )
        paper_text = f"{train_paper / 1e3:.1f}" if train_paper is not None else "n/a"
        table4.append(f"| {method} | {deploy / 1e3:.1f} | {train / 1e3:.1f} | {paper_text} |")
        numbers[method] = {
            "scores": score.tolist(),
            "final_returns": finals[method].tolist(),
            "mean": float(score.mean()),
            "std": float(score.std()),
            "iqm": iqm.get(method),
            "deploy": deploy,
            "train": train,
            "dR": deploy / baseline["deploy"] if baseline else None,
            "tR": train / baseline["train"] if baseline else None,
            "train_paper": train_paper,
            "tR_paper": train_paper / base_paper if train_paper is not None and base_paper else None,
        }
    return "\n".join(table3), "\n".join(table4), numbers


def schedule_section(runs: dict[str, list[dict[str, Any]]]) -> Section | None:
    """Per run with gates: how long the thetas learned (in gradient updates), the OFE pre-training,
    the theta learning rate, and the share of alive thetas still undecided just before rounding."""
    rows = []
    for method, group in runs.items():
        for summary in group:
            if not uses_gates(summary):
                continue
            hyperparams = summary.get("hyperparams") or {}
            record = summary.get("xi_record") or _schedule_from_settings(summary)
            learning = (
                "n/a"
                if "learning_from_update" not in record or "rounded_from_update" not in record
                else f"{record['rounded_from_update'] - record['learning_from_update']:,.0f}"
            )
            window = (
                f"{record['learning_from_step']:,.0f} to {record['rounded_from_step']:,.0f}"
                if "rounded_from_step" in record and "learning_from_step" in record
                else "n/a"
            )
            pretrain = record.get("ofe_pretrain_updates", "n/a")
            theta_lr = hyperparams.get("theta_lr") or hyperparams.get("learning_rate", 3e-4)
            undecided = (record.get("before_rounding") or {}).get("undecided")
            shares = (
                "not recorded (a run made before the diagnostics)"
                if undecided is None
                else ", ".join(f"{net} {100 * share:.0f}%" for net, share in undecided.items())
            )
            rows.append(
                f"| {method} | {summary['seed']} | {window} | {learning} | {pretrain} | {theta_lr} | {shares} |"
            )
    if not rows:
        return None
    return Section(
        "The thetas' schedule",
        [
            "",
            (
                "Per run with gates: env steps in which the thetas learned, the gradient updates that took (Adam moves "
                "a theta by about one learning rate per update at most, so crossing [0, 1] takes >= 1/theta-lr "
                "updates of a consistent push), the OFE pre-training updates, the theta learning rate, and the share "
                "of alive thetas (>= theta_tol) still undecided (below 0.9) just before rounding, per network."
            ),
            "",
            (
                "| method | seed | thetas learn (env steps) | θ-learning updates | OFE pre-training updates | θ-lr | "
                "undecided before rounding |"
            ),
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
        ],
    )


def _schedule_from_settings(summary: dict[str, Any]) -> dict[str, Any]:
    """The schedule of a run made before ``xi_record`` existed, from its settings: SB3's one
    gradient step per env step after learning_starts, OFE pre-training of 1% of the run (at most
    10,000 updates) unless set; empty where the settings change the cadence."""
    hyperparams = summary.get("hyperparams") or {}
    if any(key in hyperparams for key in ("train_freq", "gradient_steps")):
        return {}
    timesteps, starts = int(summary["timesteps"]), int(hyperparams.get("learning_starts", 100))
    start = env_steps(parse_schedule_point(hyperparams.get("xi_start", 0.2), "xi_start"), timesteps)
    end = rounding_step(summary)
    record: dict[str, Any] = {
        "ofe_pretrain_updates": hyperparams.get("ofe_pretrain_steps") or min(10_000, int(0.01 * timesteps))
    }
    if end is not None:
        record.update(
            learning_from_step=start,
            rounded_from_step=end,
            learning_from_update=max(0.0, start - starts),
            rounded_from_update=max(0.0, end - starts),
        )
    return record


def _schedule_marks(runs: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """Where the runs with gates start learning their thetas and round them (first run that says):
    the schedule as it happened, or as the settings give it (:func:`_schedule_from_settings`)."""
    for group in runs.values():
        for summary in group:
            if not uses_gates(summary):
                continue
            record = summary.get("xi_record") or _schedule_from_settings(summary)
            marks = {
                key: float(record[f"{name}_from_step"])
                for key, name in (("xi_start", "learning"), ("xi_round", "rounded"))
                if f"{name}_from_step" in record
            }
            if marks:
                return marks
    return {}


def _moving_mean(values: np.ndarray, n: int) -> np.ndarray:
    """The paper's n-point moving mean (trailing; the first points average what there is)."""
    if n <= 1:
        return values
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty_like(values, dtype=float)
    for i in range(len(values)):
        lo = max(0, i + 1 - n)
        out[i] = (cumsum[i + 1] - cumsum[lo]) / (i + 1 - lo)
    return out


def paper_section(env_id: str, methods: list[str]) -> Section | None:
    """The paper's Table 3 and 4 rows for this task (its v2 version), for the methods in the report."""
    task = env_id.split("-")[0]
    table = PAPER_TABLES.get(task)
    if table is None:
        return None
    rows = [m for m in methods if m in table] or list(table)

    def pct(x: int | None, method: str, column: int) -> str:
        if x is not None:
            return f"{x}%"
        # not legible in the paper's Table 3: derived from its Table 4 counts against OFE's
        return f"≈{100 * table[method][column] / table['ofe'][column]:.0f}% (Table 4)"

    return Section(
        f"The paper's numbers for {task} (Tables 3 and 4)",
        [
            "",
            (
                f"From Guenter & Sideris (arXiv 2507.11975), on {task}-v2 (MuJoCo v2; ours run {env_id}), "
                f"{'2M' if task == 'HalfCheetah' else '1M'} env steps at the paper's network sizes, one score per "
                "method (the paper does not give its number of seeds). Train counts follow the paper's convention "
                "(with a V network, without f_pred). ≈: not legible in the paper's Table 3, derived from its Table 4."
            ),
            "",
            "| method (paper) | score | dR | tR | deploy params (k) | train params (k) |",
            "|---|---|---|---|---|---|",
            *[
                f"| {m} | {table[m][0]} | {pct(table[m][1], m, 3)} | {pct(table[m][2], m, 4)} | {table[m][3]} | "
                f"{table[m][4]} |"
                for m in rows
            ],
            "",
        ],
    )


def _plots(runs: dict[str, list[dict[str, Any]]], out: pathlib.Path, env_id: str, smooth: int = 1) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig: Any, name: str) -> str:
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        return name

    written = []
    # Fig. 3: evaluation return during training, mean over seeds with min-max band (each seed's
    # curve smoothed first with the paper's moving mean when smooth > 1); the thetas' schedule marked
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, group in runs.items():
        steps = np.array(group[0]["eval_timesteps"])
        n = min(len(s["eval_returns"]) for s in group)
        returns = np.array([_moving_mean(np.asarray(s["eval_returns"][:n], dtype=float), smooth) for s in group])
        ax.plot(steps[:n], returns.mean(0), label=method)
        ax.fill_between(steps[:n], returns.min(0), returns.max(0), alpha=0.2)
    for key, style in (("xi_start", ":"), ("xi_round", "--")):
        step = _schedule_marks(runs).get(key)
        if step is not None:
            ax.axvline(step, color="grey", linestyle=style, linewidth=1, label=f"{key} ({step:,.0f})")
    smoothed = f", {smooth}-point moving mean" if smooth > 1 else ""
    ax.set(xlabel="environment steps", ylabel="evaluation return", title=f"{env_id}: learning curves{smoothed}")
    ax.legend(fontsize=8)
    written.append(save(fig, PNG_CURVES))

    # Fig. 5: units per OFE layer after training (mean over seeds)
    ofe_runs = {m: g for m, g in runs.items() if g[0].get("units")}
    if ofe_runs:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        width = 0.8 / len(ofe_runs)
        for i, (method, group) in enumerate(ofe_runs.items()):
            layers = np.array([s["units"]["phi_o"] + s["units"]["phi_oa"] for s in group], dtype=float).mean(0)
            n_o = len(group[0]["units"]["phi_o"])
            x = np.arange(len(layers)) + i * width
            bars = ax.bar(
                x, layers, width, label=f"{method} (phi_o {layers[:n_o].sum():.0f}, phi_oa {layers[n_o:].sum():.0f})"
            )
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        labels = [f"o{i + 1}" for i in range(n_o)] + [f"oa{i + 1}" for i in range(len(layers) - n_o)]
        ax.set_xticks(np.arange(len(layers)) + 0.4 - width / 2, labels)
        ax.set(
            xlabel="OFE block (phi_o, then phi_oa)",
            ylabel="units after training",
            title=f"{env_id}: units per OFE layer",
        )
        ax.legend(fontsize=8)
        written.append(save(fig, PNG_UNITS))

    # theta and units alive over time, pruning methods only
    xi_runs = {
        m: g for m, g in runs.items() if g[0]["history"] and "theta_phi_o" in g[0]["history"][0] and "prune" in m
    }
    if xi_runs:
        nets = ("phi_o", "phi_oa", "actor", "critic")
        fig, axes = plt.subplots(2, len(nets), figsize=(13, 6), sharex=True)
        for method, group in xi_runs.items():
            n = min(len(s["history"]) for s in group)
            steps = [row["timesteps"] for row in group[0]["history"][:n]]
            for j, net in enumerate(nets):
                theta = np.array([[row[f"theta_{net}"] for row in s["history"][:n]] for s in group])
                units = np.array([[row[f"units_{net}"] for row in s["history"][:n]] for s in group])
                axes[0, j].plot(steps, np.nanmean(theta, 0), label=method)
                axes[1, j].plot(steps, units.mean(0), label=method)
                axes[0, j].set_title(net)
        axes[0, 0].set_ylabel("mean theta (alive units)")
        axes[1, 0].set_ylabel("units alive")
        for ax in axes[1]:
            ax.set_xlabel("environment steps")
        axes[0, 0].legend(fontsize=8)
        fig.suptitle(f"{env_id}: theta and units during training")
        written.append(save(fig, PNG_THETA))

    # why units die: per layer, the task's and the regulariser's theta gradients, Adam's rate, undecided thetas
    diagnosed = {m: g for m, g in runs.items() if any(s.get("theta_history") for s in g)}
    if diagnosed:
        nets = ("phi_o", "phi_oa", "actor", "critic")
        keys = (
            ("task_grad", "|task gradient|"),
            ("task_grad_signed", "mean task gradient\n(< 0: keep on)"),
            ("push", "regulariser push"),
            ("adam_rate", "Adam |update| / lr"),
            ("undecided", "undecided share"),
        )
        fig, axes = plt.subplots(len(keys), len(nets), figsize=(14, 12), sharex=True)
        for method, group in diagnosed.items():
            rows = [r for s in group for r in (s.get("theta_history") or [])]
            for j, net in enumerate(nets):
                layers = sorted({r["layer"] for r in rows if network_of(r["layer"]) == net})
                for layer in layers:
                    steps = sorted({r["timesteps"] for r in rows if r["layer"] == layer})
                    for i, (key, _) in enumerate(keys):
                        values = [
                            np.nanmean([r[key] for r in rows if r["layer"] == layer and r["timesteps"] == t])
                            for t in steps
                        ]
                        label = f"{method} {layer}" if len(diagnosed) > 1 else layer
                        axes[i, j].plot(steps, values, label=label if i == 0 else None, linewidth=1)
                axes[0, j].set_title(net)
                axes[0, j].legend(fontsize=6)
        for i, (key, label) in enumerate(keys):
            axes[i, 0].set_ylabel(label)
            for ax in axes[i]:
                if key in ("task_grad", "push"):
                    ax.set_yscale("log")
                elif key == "task_grad_signed":
                    ax.set_yscale("symlog", linthresh=1e-6)
        for ax in axes[-1]:
            ax.set_xlabel("environment steps")
        fig.suptitle(f"{env_id}: theta diagnostics per layer (mean over seeds)")
        written.append(save(fig, PNG_DIAGNOSTICS))

    # critic (and actor) sparsity over time, masked peers only
    masked = {m: g for m, g in runs.items() if g[0]["history"] and "sparsity_critic" in g[0]["history"][-1]}
    if masked:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for method, group in masked.items():
            n = min(len(s["history"]) for s in group)
            steps = [row["timesteps"] for row in group[0]["history"][:n]]
            for net, style in (("critic", "-"), ("actor", "--")):
                if f"sparsity_{net}" in group[0]["history"][-1]:
                    values = np.array([[row.get(f"sparsity_{net}", np.nan) for row in s["history"][:n]] for s in group])
                    ax.plot(steps, np.nanmean(values, 0), style, label=f"{method} {net}")
        ax.set(
            xlabel="environment steps",
            ylabel="sparsity (fraction of weights masked)",
            title=f"{env_id}: sparsity of the masked peers",
        )
        ax.legend(fontsize=8)
        written.append(save(fig, PNG_SPARSITY))
    return written


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.median(present)) if present else None


def cost_section(runs: dict[str, list[dict[str, Any]]]) -> tuple[Section, dict[str, Any]]:
    """What each method costs at its final size: parameters kept, critic sparsity (masked peers),
    the exported policy's batch-1 latency and the training step's time (:mod:`sb3_ofexi.harness.measure`)."""
    rows, numbers, sources = [], {}, set()
    for method, group in runs.items():
        speeds = [s.get("speed") or {} for s in group]
        latency = _median([sp.get("deploy_latency_ms") for sp in speeds])
        step = _median([sp.get("train_step_ms") for sp in speeds])
        sources.update(
            f"{sp.get('source', 'end of the run')}, torch threads {sp.get('torch_threads')}"
            + (f", {sp['machine']}" if sp.get("machine") else "")
            for sp in speeds
            if sp
        )
        sparsity = _median([(s.get("sparsities") or {}).get("critic") for s in group])
        numbers[method] = {
            "deploy_latency_ms": latency,
            "train_step_ms": step,
            "critic_sparsity": sparsity,
            "wall_s": _median([s["wall_s"] for s in group]),
        }
        rows.append(
            f"| {method} | {np.mean([s['params']['deploy'] for s in group]) / 1e3:.1f} | "
            f"{np.mean([s['params']['train'] for s in group]) / 1e3:.1f} | "
            f"{'-' if sparsity is None else f'{100 * sparsity:.0f}%'} | "
            f"{'n/a' if latency is None else f'{1e3 * latency:.1f}'} | {'n/a' if step is None else f'{step:.1f}'} | "
            f"{numbers[method]['wall_s']:.0f} |"
        )
    lines = [
        "",
        (
            "Parameters kept (k): OFEXiNet methods remove whole units, so their matrices shrink; the masked peers "
            "(polyprune, eaudesac) hold their pruned weights at zero in matrices of unchanged shape, so their counts "
            "fall without any change in the arithmetic of a dense kernel. Latency: the deterministic policy exported "
            "to ONNX by one exporter for all methods, onnxruntime on 1 thread, batch 1, median over seeds. Step: "
            "one gradient step (`model.train`, the run's batch size) at the final size, ms, median over seeds. "
            "Wall time: the run's training time summed over its sittings (a stopped process's paused time included), "
            "median over seeds, so one interrupted seed does not move it. "
            f"Measured: {'; '.join(sorted(sources)) or 'not measured'}. Timings compare methods within this "
            "report only."
        ),
        "",
        (
            "| method | deploy nonzero (k) | train nonzero (k) | critic sparsity | deploy latency (µs) | "
            "train step (ms) | wall time per run (s) |"
        ),
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    return Section("What the savings buy (cost at the final size)", lines), numbers


def budget_section(runs: dict[str, list[dict[str, Any]]]) -> Section | None:
    """Methods run with a size budget: the budget, the size each seed reached, whether it was met."""
    rows = []
    for method, group in runs.items():
        for kind in ("deploy", "train"):
            entries = [s["budgets"][kind] for s in group if s.get("budgets") and kind in s["budgets"]]
            if not entries:
                continue
            reached = ", ".join(f"{e['params']:,}" for e in entries)
            met = sum(e["met"] for e in entries)
            budgets = sorted({e["budget"] for e in entries})
            rows.append(
                f"| {method} | {kind} | {', '.join(f'{b:,}' for b in budgets)} | {reached} | {met} of {len(entries)} |"
            )
    if not rows:
        return None
    return Section(
        "Size budgets",
        [
            "",
            "Parameters as counted in the tables above; one size per seed.",
            "",
            "| method | budget on | budget (params) | reached (per seed) | met |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ],
    )


def build_report(out_dir: str | pathlib.Path, hyperparams_dir: str | None = None, smooth: int = 1) -> pathlib.Path:
    """Write ``report.md``, ``report.json`` and the PNGs into ``out_dir``; return the Markdown path."""
    return make_report(out_dir, hyperparams_dir, smooth).path


def make_report(out_dir: str | pathlib.Path, hyperparams_dir: str | None = None, smooth: int = 1) -> Report:
    """:func:`build_report`, returning the report as data.

    :param smooth: learning curves as the paper's ``smooth``-point moving mean (1: as evaluated)
    """
    out = pathlib.Path(out_dir)
    failures = load_failures(out)
    runs = load_runs(out, allow_empty=bool(failures), hyperparams_dir=hyperparams_dir)
    failed = None
    if failures:
        failed = Section(
            "Failed runs",
            [
                "",
                (
                    "Each has its traceback in METHOD/seedN/failed.json; re-running the "
                    "same command retries them (from their last checkpoint)."
                ),
                "",
                "| method | seed | error |",
                "|---|---|---|",
                *[f"| {f['method']} | {f['seed']} | {f['error'].splitlines()[0][:200]} |" for f in failures],
                "",
            ],
        )
    if not runs:
        report = Report(out / "report.md", "No run finished", [""], failed)
        report.path.write_text(report.markdown().removesuffix("\n"))
        return report
    env_id = next(iter(runs.values()))[0]["env_id"]
    baseline = ofe_baseline_counts(runs, hyperparams_dir)
    table3, table4, numbers = tables(runs, baseline)
    pngs = _plots(runs, out, env_id, smooth)
    cost, cost_numbers = cost_section(runs)
    for method, entry in cost_numbers.items():
        numbers[method].update(entry)
    first = next(iter(runs.values()))[0]
    intro = [
        "",
        (
            f"{first['timesteps']:,} env steps per run; evaluation every {first['eval_timesteps'][0]:,} steps, "
            f"{first['eval_episodes']} deterministic episodes on a separately seeded env. Score: the best evaluation "
            f"strictly after env step {first['score_after']:,.0f}, where prune-b rounds its thetas in a run of this "
            "length (an evaluation at exactly that step runs before the rounding), the same window for every "
            f"method ({first['score_evals']} evaluations): what the user gets, the rounded network (the paper, Table 3, "
            "scores the last 20%, by which its thetas are 0 or 1). Final return: the last evaluation. IQM with a 95% "
            f"bootstrap CI from {MIN_SEEDS_IQM} seeds up; below that, per-seed values and their range. dR / tR: "
            "deploy / train parameters relative to OFE on this env"
            + (
                " (SAC_OFEXi's `ofe`), for every method here, TD3 and TQC ones too (one denominator for the whole "
                "table; TD3's actor has half SAC's output rows, TQC's critics one output per quantile)."
                if any(m.startswith(("td3", "tqc", "crossq")) for m in runs)
                else "."
            )
        ),
        "",
        (
            "What each count includes (weights and biases; BatchNorm scale and shift; the DenseNets' diagonal V; "
            "never the thetas, BatchNorm running statistics or the critic targets):"
        ),
        "",
        "* deploy = phi_o + actor (stock SAC, TD3, TQC, CrossQ: actor), as Table 1's deployment column;",
        (
            "* train = phi_o + phi_oa + f_pred + actor + the critics (stock SAC, TD3, TQC, CrossQ: actor + critics; "
            "TD3's actor target, like every target, not counted; TQC's critics with all their quantile outputs);"
        ),
        (
            "* polyprune / eaudesac: the same, without their masked (zero) weights; eaudesac's train count holds "
            "its whole population of online critics;"
        ),
        (
            "* train, paper convention = train without f_pred, plus the V network of the paper's SAC (on the actor's "
            "input, with the first critic's hidden widths), which SB3's SAC does not have. With it our OFE / SAC / "
            "SAC-Big counts match Table 4 to 0.3%; OFE-Big's Table 4 count seems to include f_pred "
            "(docs/COMPLEXITY.md, `python -m benchmarks.paper_counts`)."
        ),
        "",
    ]
    sections = [
        Section("Score, dR and tR (Table 3)", ["", table3, ""]),
        Section("Parameters (Table 4)", ["", table4, ""]),
        budget_section(runs),
        schedule_section(runs),
        paper_section(env_id, list(runs)),
        cost,
    ]
    report = Report(out / "report.md", f"{env_id}: {', '.join(runs)}", intro, failed, [s for s in sections if s], pngs)
    report.path.write_text(report.markdown())
    (out / "report.json").write_text(
        json.dumps({"env": env_id, "ofe_baseline": baseline, "methods": numbers}, indent=1)
    )
    return report


#: the paper's budget per task (section 5): 2M env steps for HalfCheetah, 1M elsewhere
PAPER_STEPS = {"HalfCheetah": 2_000_000}
#: the results page's title unless ``--title`` names another
RESULTS_TITLE = "Results on MuJoCo"
RESULT_FILES = ("summary.json", "evaluations.npz", "speed.json", "failed.json")


def publish_runs(source: str | pathlib.Path, target: str | pathlib.Path) -> list[pathlib.Path]:
    """Copy the small result files of every run under ``source`` (``ENV/METHOD/seedN/``) into
    ``target``: summaries, evaluation arrays, re-measured timings and failure records; never
    models, checkpoints or replay buffers."""
    import shutil

    source, target = pathlib.Path(source), pathlib.Path(target)
    copied = []
    for path in sorted(source.glob("*/*/seed*/*")):
        ended = (path.parent / "summary.json").exists() or (path.parent / "failed.json").exists()
        if path.name in RESULT_FILES and ended:  # a run still going is published when it ends
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".json":
                record = portable_record(json.loads(path.read_text()), destination.parents[2].name)
                destination.write_text(json.dumps(record, indent=1))
            else:
                shutil.copy2(path, destination)
            copied.append(destination)
    return copied


def portable_record(record: dict[str, Any], task: str) -> dict[str, Any]:
    """A summary or failure record without the paths of the machine that made it: ``out_dir``
    becomes the task folder's name, an absolute ``hyperparams_dir`` its folder name, a
    traceback's absolute file paths their paths from the package (``sb3_ofexi/...``), and the
    paths in a failed timing's message their file names."""
    import re

    record = dict(record)
    if "out_dir" in record:
        record["out_dir"] = task
    if record.get("hyperparams_dir") and pathlib.Path(record["hyperparams_dir"]).is_absolute():
        record["hyperparams_dir"] = pathlib.Path(record["hyperparams_dir"]).name
    if "traceback" in record:
        record["traceback"] = re.sub(
            r'File "/[^"]*?/((?:sb3_ofexi|site-packages)/[^"]*)"', r'File ".../\1"', record["traceback"]
        )
    if isinstance(record.get("speed"), dict):  # a failed timing's message names its temporary files
        record["speed"] = {
            key: re.sub(r"/(?:[^\s/\"']+/)+([^\s/\"']+)", r"\1", value) if key.endswith("_error") else value
            for key, value in record["speed"].items()
        }
    return record


def _task_dirs(root: pathlib.Path) -> list[pathlib.Path]:
    return sorted({p.parents[2] for p in root.glob("*/*/seed*/summary.json")})


def _scale_rows(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    rows = []
    for method, group in runs.items():
        start = group[0]["history"][0] if group[0]["history"] else {}
        steps = sorted({s["timesteps"] for s in group})
        rows.append(
            f"| {method} | {len(group)} | {', '.join(f'{t:,}' for t in steps)} | "
            f"{start.get('deploy', 0) / 1e3:.1f} | {start.get('train', 0) / 1e3:.1f} | "
            f"{group[0]['hyperparams'].get('learning_starts', 'n/a')} |"
        )
    return rows


def _schedule_sentence(env_id: str, timesteps: int, hyperparams_dir: str | None) -> str:
    """How prune-b's xi_start moved from the YAML entry's budget to the runs' (scale_schedule)."""
    try:
        entry = load_hyperparams("prune-b", env_id, hyperparams_dir)
    except ValueError:
        entry = {}
    point, n_timesteps = entry.get("xi_start"), int(entry.get("n_timesteps", 0))
    starts = int(entry.get("learning_starts", 100))
    if not isinstance(point, int) or not n_timesteps or n_timesteps == timesteps:
        return ""
    moved = schedule_point(point, starts, n_timesteps, timesteps)
    return (
        f" (prune-b's xi_start, {point:,} of the entry's {n_timesteps:,} env steps, after "
        f"{(point - starts) / (n_timesteps - starts):.1%} of its gradient steps, becomes {moved:,} of "
        f"{timesteps:,} with learning_starts {starts:,})"
    )


def overview_table(task_dirs: list[pathlib.Path], hyperparams_dir: str | None = None) -> list[str]:
    """Every task and method in one table: per-seed scores and final returns, sizes at the end,
    the exported policy's latency and the training step (the tasks' reports have the rest)."""
    rows = []
    for task_dir in task_dirs:
        runs = load_runs(task_dir, hyperparams_dir=hyperparams_dir)
        env_id = next(iter(runs.values()))[0]["env_id"]
        _, _, numbers = tables(runs, None)
        _, costs = cost_section(runs)
        for method, group in runs.items():
            score, cost = numbers[method], costs[method]
            latency, step = cost["deploy_latency_ms"], cost["train_step_ms"]
            rows.append(
                f"| {env_id} | {method} | {len(group)} | {_values(np.array(score['scores']))} | "
                f"{score['mean']:.1f} | {_values(np.array(score['final_returns']))} | "
                f"{score['deploy'] / 1e3:.1f} / {score['train'] / 1e3:.1f} | "
                f"{'n/a' if latency is None else f'{1e3 * latency:.1f}'} | {'n/a' if step is None else f'{step:.1f}'} |"
            )
    return [
        (
            "| task | method | seeds | score per seed | mean | final return per seed | deploy / train params (k) | "
            "deploy latency (µs) | train step (ms) |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]


def _task_block(
    task_dir: pathlib.Path, link: pathlib.Path, hyperparams_dir: str | None, smooth: int, heading: str = "##"
) -> list[str]:
    """One task folder's part of the results page: its scale, its report's tables, its figures."""
    report = make_report(task_dir, hyperparams_dir, smooth)
    runs = load_runs(task_dir, hyperparams_dir=hyperparams_dir)
    env_id = next(iter(runs.values()))[0]["env_id"]
    task = env_id.split("-")[0]
    paper_steps = PAPER_STEPS.get(task, 1_000_000)
    level = len(heading) + 1  # the report's sections, one level under the task's heading
    body = "\n".join(line for section in report.sections for line in section.markdown(level)).rstrip()
    rel = link / task_dir.name
    first_run = next(iter(runs.values()))[0]
    title = env_id if task_dir.name == env_id else f"{env_id} ({task_dir.name})"
    return [
        f"{heading} {title}",
        "",
        (
            (
                f"Scale: the paper trains {paper_steps:,} env steps on {task}-v2; these runs train the steps below "
                "from the same starting sizes (the paper's networks and SAC settings, from `hyperparams/`). "
                if task in PAPER_TABLES
                else f"Scale: {task} is not one of the paper's tasks; these runs train the steps below with the "
                "entries of `hyperparams/` the runs read. "
            )
            + "Schedules given in env steps (xi_start) keep their place among the run's gradient steps"
            f"{_schedule_sentence(env_id, first_run['timesteps'], hyperparams_dir)}. Full report: "
            f"[{rel / 'report.md'}]({rel / 'report.md'})."
        ),
        "",
        (
            "| method | seeds | env steps per run | deploy params at start (k) | train params at start (k) | "
            "learning_starts |"
        ),
        "|---|---|---|---|---|---|",
        *_scale_rows(runs),
        "",
        body,
        "",
        *[f"![{png}]({rel}/{png})" for png in report.figures],
        "",
    ]


#: the study's pre-registered criterion (docs/study/PREREGISTRATION.md): prune-b against OFE
STUDY_SCORE_SHARE = 0.95
STUDY_DEPLOY_SHARE = 0.25
STUDY_SEEDS = (0, 1, 2)
#: collapse: a network left with fewer units than this share of its start, or a seed below this share of OFE's mean
COLLAPSE_UNITS_SHARE = 0.05
COLLAPSE_SCORE_SHARE = 0.5


def _finite(value: Any) -> bool:
    return value is not None and bool(np.isfinite(value))


def _network_units(summary: dict[str, Any]) -> dict[str, tuple[int | None, list[int]]]:
    """Each network's units at the start and per layer at the end; each critic on its own (a
    critic pruned away is a collapse even while its twin is whole)."""
    start = (summary.get("history") or [{}])[0]
    end = summary.get("units") or {}
    networks: dict[str, tuple[int | None, list[int]]] = {}
    for net in ("phi_o", "phi_oa", "actor"):
        if net in end:
            networks[net] = (start.get(f"units_{net}"), list(end[net]))
    critics = end.get("critic") or []
    critic_start = start.get("units_critic")
    for i, layers in enumerate(critics):  # the critics start alike: each holds its share of the total
        networks[f"critic{i}"] = (None if critic_start is None else critic_start // len(critics), list(layers))
    return networks


def _collapse(prune: list[dict[str, Any]], ofe_mean: float | None) -> list[str]:
    """The pre-registration's collapse check, one finding a line (a seed it cannot check says so)."""
    found = []
    for summary in prune:
        seed = summary["seed"]
        networks = _network_units(summary)
        if not networks:
            found.append(f"seed {seed}: no unit counts in its summary (not checked)")
        for net, (start, layers) in networks.items():
            if any(units == 0 for units in layers):
                found.append(f"seed {seed}: {net} has a layer pruned to 0 units ({layers})")
            elif start and sum(layers) < COLLAPSE_UNITS_SHARE * start:
                found.append(f"seed {seed}: {net} pruned to {sum(layers)} of {start} units")
        score = summary.get("score")
        if not _finite(score):
            found.append(f"seed {seed}: no score (no evaluation after rounding)")
        elif ofe_mean is not None and ofe_mean > 0 and score < COLLAPSE_SCORE_SHARE * ofe_mean:
            found.append(f"seed {seed}: score {score:.1f} < {COLLAPSE_SCORE_SHARE:.0%} of OFE's mean {ofe_mean:.1f}")
    return found


def study_verdict(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The pre-registered criterion over seeds 0-2 (pending until all six runs have finished and
    scored), and the collapse check over every finished prune-b seed."""
    groups = {m: [s for s in runs.get(m, []) if s["seed"] in STUDY_SEEDS] for m in ("ofe", "prune-b")}
    ofe, prune = groups["ofe"], groups["prune-b"]
    seeds = {m: sorted(s["seed"] for s in g) for m, g in groups.items()}
    lines = [
        f"Runs finished: ofe seeds {seeds['ofe'] or 'none'}, prune-b seeds {seeds['prune-b'] or 'none'} "
        f"(the criterion is decided on seeds {', '.join(map(str, STUDY_SEEDS))} of each)."
    ]
    scores = {m: [s.get("score") for s in g] for m, g in groups.items()}
    unscored = [f"{m} seed {s['seed']}" for m, g in groups.items() for s in g if not _finite(s.get("score"))]
    if any(sorted(set(seeds[m])) != sorted(STUDY_SEEDS) for m in groups):
        lines.append(
            "**Outcome: pending** (the runs above are still queued or running; `bash scripts/study.sh status`)."
        )
    elif unscored:
        lines.append(
            f"**Outcome: undecided**: {', '.join(unscored)} has no score (no evaluation after rounding); "
            "the criterion needs one for every seed."
        )
    else:
        score = float(np.mean(scores["prune-b"])) / float(np.mean(scores["ofe"]))
        deploy = float(np.mean([s["params"]["deploy"] for s in prune])) / float(
            np.mean([s["params"]["deploy"] for s in ofe])
        )
        met = score >= STUDY_SCORE_SHARE and deploy <= STUDY_DEPLOY_SHARE
        lines.append(
            f"**Outcome: {'supported' if met else 'not supported'}**: prune-b's mean score is "
            f"{100 * score:.1f}% of OFE's (criterion >= {100 * STUDY_SCORE_SHARE:.0f}%), its mean deploy "
            f"size {100 * deploy:.1f}% of OFE's (criterion <= {100 * STUDY_DEPLOY_SHARE:.0f}%)."
        )
    finite = [x for x in scores["ofe"] if _finite(x)]
    collapsed = _collapse(prune, float(np.mean(finite)) if finite else None)
    lines.append(
        f"Collapse check (a network pruned to < {COLLAPSE_UNITS_SHARE:.0%} of its units or a layer to none, or a "
        f"score < {COLLAPSE_SCORE_SHARE:.0%} of OFE's mean): "
        + ("; ".join(collapsed) if collapsed else "none so far")
        + "."
    )
    return lines


def _study_section(study: pathlib.Path, out: pathlib.Path, hyperparams_dir: str | None, smooth: int) -> list[str]:
    """The long study's part of the results page: its pre-registration, progress, outcome and runs."""
    lines = []
    prereg = study / "PREREGISTRATION.md"
    if prereg.exists():
        text = prereg.read_text().strip().replace("\n## ", "\n### ")
        lines += ["#" + text if text.startswith("# ") else text, ""]  # its title becomes a section
    main = study / "Hopper-v5"
    if any(main.glob("*/seed*/summary.json")):
        lines += ["### Outcome", "", *study_verdict(load_runs(main, hyperparams_dir=hyperparams_dir)), ""]
    progress = study / "PROGRESS.md"
    if progress.exists():
        table = "\n".join(line for line in progress.read_text().splitlines() if not line.startswith("# "))
        lines += ["### Progress", "", table.strip(), ""]
    link = pathlib.Path(os.path.relpath(study, out.parent))
    for task_dir in _task_dirs(study):
        lines += _task_block(task_dir, link, hyperparams_dir, smooth, heading="###")
    return lines


def build_results(
    root: str | pathlib.Path,
    out: str | pathlib.Path,
    hyperparams_dir: str | None = None,
    smooth: int = 1,
    study: str | pathlib.Path | None = None,
    title: str = RESULTS_TITLE,
    made_by: list[str] | None = None,
) -> pathlib.Path:
    """The results page: every task folder under ``root`` gets its report (:func:`build_report`),
    and ``out`` collects an overview of every task, then their tables, scale and the paper's
    numbers on one page; ``study`` (the long study's published folder, e.g. docs/study) leads the
    page when given. ``made_by``: the commands that made the runs (default: the 30k-step pages'
    ``scripts/results.sh``, with what that scale can show)."""
    root, out = pathlib.Path(root), pathlib.Path(out)
    tasks = _task_dirs(root)
    if not tasks:
        raise ValueError(f"No finished run under {root}: expected ENV/METHOD/seedN/summary.json")
    link = pathlib.Path(os.path.relpath(root, out.parent))
    first = json.loads(next(root.glob("*/*/seed*/summary.json")).read_text())
    envs = " ".join(sorted({d.name for d in tasks}))
    command = f"sb3-ofexi results {root}" + (f" --study {study}" if study else "") + f" --out {out}"
    command += f" --smooth {smooth}" if smooth > 1 else ""
    command += f" --title {shlex.quote(title)}" if title != RESULTS_TITLE else ""
    command += "".join(f" --made-by {shlex.quote(line)}" for line in made_by or [])
    steps = sorted({json.loads(p.read_text())["timesteps"] for p in root.glob("*/*/seed*/summary.json")})
    scale = f"{steps[0]:,}" if len(steps) == 1 else f"{steps[0]:,} to {steps[-1]:,}"
    lines = [
        f"# {title}",
        "",
        f"Generated by `{command}` from the run summaries committed under `{root}/`"
        + (f" and `{study}/`" if study else "")
        + " (summary.json, evaluations.npz and speed.json of every run; no replay buffers"
        + ("; the study's finished runs also keep their trained agent, model.zip" if study else "; no models")
        + "). What each count includes is stated in each task's report. Scores are "
        "taken on what the user gets: the best deterministic evaluation strictly after prune-b rounds its thetas "
        "(every method the same window), per seed.",
        "",
    ]
    if study:
        lines += [*_study_section(pathlib.Path(study), out, hyperparams_dir, smooth)]
    if made_by is None:
        made_by = [
            f'ENVS="{envs}" STEPS={first["timesteps"]} EVAL_FREQ={first["eval_freq"]} '
            f"EVAL_EPISODES={first['eval_episodes']} bash scripts/results.sh   # one copy per task to use a core each",
            "sb3-ofexi measure runs/results/ENV       # re-time every finished run in one quiet sitting (speed.json)",
            f"sb3-ofexi results {root} --publish runs/results"
            + (f" --study {study}" if study else "")
            + f" --out {out}",
        ]
        reading = [
            (
                "At this scale (1.5-3% of the paper's budgets) the thetas learn for ~10-12k updates, too few to "
                "decide (crossing [0, 1] at theta-lr 3e-4 takes >= 3.3k updates of a consistent push), and on "
                "Hopper every method scores 200-500, the seeds of most methods overlapping: these pages show "
                "the start of training, and decide nothing about the method."
            ),
            "",
        ]
    else:
        reading = []
    lines += [
        f"## Short runs: {scale} env steps",
        "",
        "How these runs were made (resumable: re-running continues where it stopped):",
        "",
        "```bash",
        *made_by,
        "```",
        "",
        *reading,
        "Every task and method at a glance (per seed; sizes at the end; latency of the exported policy and "
        "time of a training step, medians over seeds, measured as each task's report says):",
        "",
        *overview_table(tasks, hyperparams_dir),
        "",
    ]
    for task_dir in tasks:
        lines += _task_block(task_dir, link, hyperparams_dir, smooth, heading="###")
    out.write_text("\n".join(lines))
    return out
