"""Which SAC losses Table 2's nu_pi / nu_q are weighed against (``nu_rl_reference``): the evidence.

The same Prune-B run (scripts/results.sh settings: 30,000 env steps, the paper's sizes and SAC
settings, seed 0) with ``nu_rl_reference="sb3"`` (Table 2's values against SB3's losses, 0.1.x)
and ``"ofenet"`` (against the OFENet code's losses: nu_q / 50, nu_pi / 5). ``extract`` keeps what
a run dir says about its sizes over time in a small JSON (finished run: summary.json; a run in
progress: its newest checkpoint), ``table`` prints the comparison (docs/CALIBRATION.md)::

    python -m benchmarks.rl_nu_reference extract runs/nu-sb3/Hopper-v5/prune-b/seed0 docs/calibration/rl/hopper-prune-b-sb3-xi6000.json
    python -m benchmarks.rl_nu_reference table docs/calibration/rl/*.json
"""

from __future__ import annotations

import argparse
import ast
import json
import pathlib
import pickle
from typing import Any

import numpy as np

NETS = ("phi_o", "phi_oa", "actor", "critic")


def _layer_thetas(model: Any) -> dict[str, Any]:
    """Mean theta per layer of the actor and the critics (None: no unit left)."""

    def mean(gate: Any) -> float | None:
        return round(float(gate.theta.detach().mean()), 3) if gate.n_units else None

    policy = model.policy
    return {
        "actor": [mean(g) for g in policy.actor.net.gates],
        "critic": [[mean(g) for g in q.gates] for q in policy.critic.q_networks],
    }


def extract(run_dir: pathlib.Path) -> dict[str, Any]:
    """Sizes over time, evaluations and (when finished) the score of one run."""
    from sb3_ofexi import SAC_OFEXi
    from sb3_ofexi.harness.checkpoint import latest_checkpoint

    summary_path = run_dir / "summary.json"
    evaluations = np.load(run_dir / "evaluations.npz")
    out: dict[str, Any] = {
        "run": str(run_dir),
        "eval_timesteps": evaluations["timesteps"].tolist(),
        "eval_returns": evaluations["results"].mean(axis=1).round(1).tolist(),
    }
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        history = summary["history"]
        rows = ast.literal_eval(history) if isinstance(history, str) else history
        model = SAC_OFEXi.load(run_dir / "model.zip", device="cpu")
        out.update(
            env_id=summary["env_id"],
            seed=summary["seed"],
            finished=True,
            score=summary["score"],
            timesteps=summary["timesteps"],
        )
    else:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise SystemExit(f"{run_dir}: neither summary.json nor a checkpoint")
        with open(checkpoint / "state.pkl", "rb") as handle:
            rows = pickle.load(handle)["callbacks"]["history"]["rows"]
        model = SAC_OFEXi.load(checkpoint / "model.zip", device="cpu")
        # runs/<...>/ENV/METHOD/seedN
        out.update(
            env_id=run_dir.parents[1].name,
            seed=int(run_dir.name.removeprefix("seed")),
            finished=False,
            timesteps=int(model.num_timesteps),
        )
    out.update(
        nu_rl_reference=model.config.nu_rl_reference,
        xi_start=model.config.xi_start,
        units=model.unit_counts(),
        thetas=_layer_thetas(model),
        params=model.param_counts(),
        history=[{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()} for row in rows],
    )
    return out


def _fmt_theta(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"  # nan: no units left


def _score(run: dict[str, Any]) -> float:
    """The best evaluation of the rounded networks (strictly after prune-b's rounding step), as
    reports score today; the summaries of these runs (0.1.x) took the 0.8 T evaluation too."""
    from sb3_ofexi.harness.runs import score_run

    summary = {
        "env_id": run["env_id"],
        "timesteps": run["timesteps"],
        "algo": "SAC_OFEXi",
        "units": run["units"],
        "hyperparams": {"preset": "prune-b", "xi_round": 0.8},
        "eval_timesteps": run["eval_timesteps"],
        "eval_returns": run["eval_returns"],
    }
    return score_run(summary)["score"]


def table(paths: list[pathlib.Path]) -> str:
    lines = [
        "| task | nu_rl_reference | xi_start | env step | eval return | mean theta phi_o / phi_oa / actor / critic "
        "| units phi_o / phi_oa / actor / critic | deploy / train params (k) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    runs = sorted(
        (json.loads(p.read_text()) for p in paths),
        key=lambda r: (r["env_id"], r["nu_rl_reference"] != "sb3", r["xi_start"]),
    )
    for run in runs:
        returns = dict(zip(run["eval_timesteps"], run["eval_returns"]))
        for row in run["history"]:
            step = row["timesteps"]
            if step < 9000:
                continue  # thetas are frozen at 1 until the RL updates start (learning_starts 10,000)
            thetas = " / ".join(_fmt_theta(row[f"theta_{n}"]) for n in NETS)
            units = " / ".join(str(row[f"units_{n}"]) for n in NETS)
            ret = returns.get(step)
            lines.append(
                f"| {run['env_id']} | {run['nu_rl_reference']} | {run['xi_start']:,} | {step:,} | "
                f"{'-' if ret is None else f'{ret:.0f}'} | {thetas} | {units} | "
                f"{row['deploy'] / 1e3:.1f} / {row['train'] / 1e3:.1f} |"
            )
    lines += [
        "",
        "| task | nu_rl_reference | xi_start | env steps | finished | score | units per layer at the end "
        "| mean theta per layer, actor / critics |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        u = run["units"]
        layers = f"phi_o {u['phi_o']}, phi_oa {u['phi_oa']}, actor {u['actor']}, critics {u['critic']}"
        score = f"{_score(run):.1f}" if run.get("finished") else "-"
        lines.append(
            f"| {run['env_id']} | {run['nu_rl_reference']} | {run['xi_start']:,} | {run['timesteps']:,} | "
            f"{'yes' if run.get('finished') else 'no (checkpoint)'} | {score} | {layers} | "
            f"{run['thetas']['actor']} / {run['thetas']['critic']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("extract", help="one run dir -> a small JSON")
    ex.add_argument("run_dir", type=pathlib.Path)
    ex.add_argument("out", type=pathlib.Path)
    tb = sub.add_parser("table", help="the extracts -> a markdown table")
    tb.add_argument("files", type=pathlib.Path, nargs="+")
    args = parser.parse_args()
    if args.command == "extract":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(extract(args.run_dir), indent=1) + "\n")
        print(f"wrote {args.out}")
    else:
        print(table(args.files))


if __name__ == "__main__":
    main()
