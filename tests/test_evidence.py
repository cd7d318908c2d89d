"""Evidence that can decide: scores of rounded networks only, per-layer theta diagnostics, reports."""

import json

import numpy as np
import pytest
import torch as th
import yaml
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env

from sb3_ofexi.common.complexity import mlp_paper_coefficients, theta_norm
from sb3_ofexi.common.config import NU_RL_FACTORS
from sb3_ofexi.common.diagnostics import theta_stats, undecided_by_network
from sb3_ofexi.harness.report import build_report, load_runs, portable_record, study_verdict, tables
from sb3_ofexi.harness.runs import RunSpec, score_run, train_one

from .conftest import make_model

SMALL_ENTRY = {
    "policy": "MlpPolicy",
    "learning_rate": 1e-3,
    "buffer_size": 5000,
    "batch_size": 32,
    "learning_starts": 100,
    "n_timesteps": 1000,
}
SMALL_OFE = {"ofe_layers": 2, "ofe_units": 8, "policy_kwargs": "dict(net_arch=[16, 16])", "ofe_pretrain_steps": 20}


def _hyperparams(tmp_path):
    folder = tmp_path / "hyperparams"
    folder.mkdir()
    entries = {
        "sac_ofexi_prune_b": {
            **SMALL_ENTRY,
            **SMALL_OFE,
            "preset": "prune-b",
            "xi_start": 0.25,
            "xi_round": 0.8,
            "theta_lr": 0.01,
            "prune_freq": 100,
            "theta_diagnostics_freq": 200,
        },
        "sac": {**SMALL_ENTRY, "policy_kwargs": "dict(net_arch=[16, 16])"},
    }
    for stem, entry in entries.items():
        (folder / f"{stem}.yml").write_text(yaml.safe_dump({"Pendulum-v1": entry}))
    return folder


class _RoundedAtEvaluation(BaseCallback):
    """Called by EvalCallback after each evaluation: were the thetas rounded when it ran?"""

    def __init__(self) -> None:
        super().__init__()
        self.rounded: dict[int, bool] = {}

    def _on_step(self) -> bool:
        self.rounded[self.num_timesteps] = bool(self.model.theta_control.rounded)
        return True


def test_evaluation_at_the_rounding_step_runs_before_rounding():
    """SB3 evaluates in collect_rollouts, before the train() call that rounds: the evaluation at
    exactly xi_round's env step scores the stochastic-gate network, the next one the rounded one."""
    model = make_model(preset="prune-b", xi_start=200, xi_round=600, theta_diagnostics_freq=0)
    recorder = _RoundedAtEvaluation()
    evaluation = EvalCallback(
        make_vec_env("Pendulum-v1", n_envs=1, seed=1),
        eval_freq=200,
        n_eval_episodes=1,
        callback_after_eval=recorder,
        verbose=0,
    )
    model.learn(800, callback=evaluation)
    assert recorder.rounded == {200: False, 400: False, 600: False, 800: True}


def test_score_window_excludes_the_evaluation_at_the_rounding_step(tmp_path):
    spec = {
        "env_id": "Pendulum-v1",
        "seed": 0,
        "timesteps": 1000,
        "out_dir": str(tmp_path),
        "eval_freq": 200,
        "eval_episodes": 1,
        "hyperparams_dir": str(_hyperparams(tmp_path)),
        "measure_speed": False,
    }
    prune = train_one(RunSpec(method="prune-b", **spec))
    sac = train_one(RunSpec(method="sac", **spec))
    assert prune["xi_record"]["rounded_from_step"] == 800  # 0.8 of 1,000
    for summary in (prune, sac):  # the same window for every method of the same run length
        assert summary["eval_timesteps"] == [200, 400, 600, 800, 1000]
        assert summary["score_after"] == 800.0
        assert summary["score_evals"] == 1
        assert summary["score"] == summary["eval_returns"][-1] == summary["final_return"]
    # a pre-rounding evaluation that was the best no longer counts
    faked = {**prune, "eval_returns": [0.0, 0.0, 0.0, 100.0, -50.0]}
    assert score_run(faked, spec["hyperparams_dir"])["score"] == -50.0
    # the summary tells the diagnostics: rows for every layer, in the learning phase only
    rows = prune["theta_history"]
    assert rows and {r["timesteps"] for r in rows} == {400, 600}
    assert {r["layer"] for r in rows} >= {"phi_o[0]", "phi_oa[1]", "actor[0]", "critic1[1]"}
    undecided = prune["xi_record"]["before_rounding"]["undecided"]
    assert set(undecided) == {"phi_o", "phi_oa", "actor", "critic"}
    assert prune["history"][-1].keys() >= {"undecided_phi_o", "undecided_critic"}


def test_summaries_from_before_the_fix_are_scored_again(tmp_path):
    """A summary that was scored on the 0.8 T evaluation (rounded at 0.8 T) is re-scored when loaded."""
    run = tmp_path / "prune-b" / "seed0"
    run.mkdir(parents=True)
    summary = {
        "method": "prune-b",
        "env_id": "Pendulum-v1",
        "seed": 0,
        "timesteps": 30000,
        "algo": "SAC_OFEXi",
        "hyperparams": {"preset": "prune-b", "xi_round": 0.8},
        "units": {"phi_o": [1]},
        "eval_timesteps": [21000, 24000, 27000, 30000],
        "eval_returns": [1.0, 9.0, 2.0, 3.0],
        "score": 9.0,
        "final_return": 3.0,
        "params": {"deploy": 1, "train": 2},
        "history": [],
        "wall_s": 1.0,
    }
    (run / "summary.json").write_text(json.dumps(summary))
    (loaded,) = load_runs(tmp_path)["prune-b"]
    assert loaded["score"] == 3.0 and loaded["score_after"] == 24000.0


def test_regulariser_push_is_nu_times_the_paper_coefficient():
    """In "paper" mode the push on each unit of a layer is nu * coef_l (eq. 32)."""
    model = make_model(preset="prune-b", nu_actor=1e-2, regulariser="paper")
    for gate in model.policy.xi_layers().values():
        gate.theta.requires_grad_(True)
    push = model.theta_control.nu.push(model.policy, model.policy.xi_layers())
    d_z_o = model.policy.feature_widths()[0]
    norms = [theta_norm(g.theta.detach()) for g in model.actor.net.gates]
    coefs = mlp_paper_coefficients(d_z_o, norms, model.actor.net.out_features)
    nu = 1e-2 * NU_RL_FACTORS[model.config.nu_rl_reference]["actor"]
    for i, coef in enumerate(coefs):
        expected = th.full_like(push[f"actor[{i}]"], float(nu * coef))
        th.testing.assert_close(push[f"actor[{i}]"], expected)
    assert all(bool((p >= 0).all()) for p in push.values())  # the regulariser only ever pushes down


def test_diagnostics_split_the_step_gradient_into_task_and_push():
    """task_grad = the step's theta gradient minus the push: with nu = 0 the push is 0 and the task
    gradient is the whole gradient; Adam's rate is a positive number of learning rates."""
    model = make_model(
        preset="prune-b",
        nu_ofe=0.0,
        nu_actor=0.0,
        nu_critic=0.0,
        xi_start=150,
        xi_round=1.0,
        theta_diagnostics_freq=100,
    )
    model.learn(400)
    rows = model.theta_history
    assert {r["timesteps"] for r in rows} == {200, 300, 400}
    for row in rows:
        assert row["push"] == 0.0
        assert row["task_grad"] > 0 and abs(row["task_grad_signed"]) <= row["task_grad"] + 1e-12
        assert 0 < row["adam_rate"] < 2
    # with nu > 0 the push is positive and the rows keep the same cadence
    model = make_model(preset="prune-b", nu_actor=1e-2, xi_start=150, xi_round=1.0, theta_diagnostics_freq=100)
    model.learn(300)
    assert all(r["push"] > 0 for r in model.theta_history if r["layer"].startswith("actor"))


def test_undecided_share_before_rounding():
    model = make_model(preset="prune-b")
    with th.no_grad():
        for gate in model.policy.xi_layers().values():
            gate.theta.fill_(1.0)
        model.actor.net.gates[0].theta[:4] = th.tensor([0.05, 0.5, 0.95, 0.3])
    stats = theta_stats(model.policy.xi_layers(), model.config.theta_tol)
    assert stats["actor[0]"]["alive"] == 15 and stats["actor[0]"]["undecided"] == pytest.approx(2 / 15)
    model.theta_control.round_thetas()
    before = model.xi_record["before_rounding"]
    assert before["undecided"]["actor"] == pytest.approx(2 / 31)
    assert before["undecided"]["phi_o"] == 0.0
    assert undecided_by_network(before["layers"]) == before["undecided"]


def _summary(method, seed, score, final):
    return {
        "method": method,
        "seed": seed,
        "score": score,
        "final_return": final,
        "params": {"deploy": 10, "train": 20},
    }


def test_tables_show_the_range_below_five_seeds_and_iqm_from_five():
    runs = {
        "few": [_summary("few", s, 10.0 * s, -s) for s in range(3)],
        "many": [_summary("many", s, 10.0 * s, -s) for s in range(5)],
    }
    table3, _, numbers = tables(runs, {"deploy": 10, "train": 20})
    few, many = (line for line in table3.splitlines() if line.startswith(("| few", "| many")))
    assert "range 0.0 to 20.0" in few and "IQM" not in few and "0.0, 10.0, 20.0" in few
    assert "IQM" in many and numbers["many"]["iqm"] is not None and numbers["few"]["iqm"] is None
    assert numbers["few"]["final_returns"] == [0, -1, -2]


def test_report_marks_the_schedule_and_lists_the_thetas_schedule(tmp_path):
    hyperparams = _hyperparams(tmp_path)
    spec = {
        "env_id": "Pendulum-v1",
        "seed": 0,
        "timesteps": 1000,
        "out_dir": str(tmp_path / "runs"),
        "eval_freq": 200,
        "eval_episodes": 1,
        "hyperparams_dir": str(hyperparams),
        "measure_speed": False,
    }
    train_one(RunSpec(method="prune-b", **spec))
    text = build_report(tmp_path / "runs", str(hyperparams), smooth=5).read_text()
    assert "## The thetas' schedule" in text and "strictly after env step 800" in text
    assert (tmp_path / "runs" / "theta_diagnostics.png").exists()
    row = next(line for line in text.splitlines() if line.startswith("| prune-b | 0 |"))
    assert "250 to 800 | 550 | 20 | 0.01 |" in row and "phi_o" in row


def test_published_records_hold_no_paths_of_the_machine():
    record = {
        "out_dir": "/home/someone/runs/Hopper-v5",
        "hyperparams_dir": "/home/someone/hp",
        "seed": 0,
        "traceback": 'File "/home/someone/.venv/lib/site-packages/torch/x.py", line 1\n'
        'File "/home/someone/repo/sb3_ofexi/experiments.py", line 2',
        "speed": {
            "deploy_latency_ms": None,
            "deploy_latency_ms_error": "RuntimeError: The exported policy /tmp/tmpab12/policy.onnx differs",
        },
    }
    portable = portable_record(record, "Hopper-v5")
    assert "/home/someone" not in json.dumps(portable)
    assert portable["out_dir"] == "Hopper-v5" and portable["hyperparams_dir"] == "hp"
    assert portable["speed"]["deploy_latency_ms_error"] == "RuntimeError: The exported policy policy.onnx differs"
    assert np.isclose(portable["seed"], 0)


def _study_run(method, seed, score, deploy):
    """A finished study run's summary: prune-b ones start at 6 x 8 phi_o / phi_oa, 16-16 actor, 32-32 critics."""
    summary = {**_summary(method, seed, score, score), "params": {"deploy": deploy, "train": 2 * deploy}}
    if method == "prune-b":
        start = {"units_phi_o": 48, "units_phi_oa": 48, "units_actor": 32, "units_critic": 128}
        summary["history"] = [start]
        summary["units"] = {
            "phi_o": [8, 2] * 3,
            "phi_oa": [4] * 6,
            "actor": [8, 8],
            "critic": [[8, 8], [8, 8]],
        }
    return summary


def _study(ofe, prune):
    return {
        "ofe": [_study_run("ofe", seed, score, 100) for seed, score in ofe],
        "prune-b": [_study_run("prune-b", seed, score, 20) for seed, score in prune],
    }


def test_study_verdict_waits_for_seeds_0_to_2_of_both_methods():
    other_seeds = study_verdict(_study([(0, 100.0), (1, 100.0), (3, 100.0)], [(0, 100.0), (1, 100.0), (5, 100.0)]))
    assert "**Outcome: pending**" in other_seeds[1]
    complete = study_verdict(_study([(s, 100.0) for s in range(3)], [(0, 0.0), (1, 144.0), (2, 144.0)]))
    assert complete[1].startswith("**Outcome: supported**") and "96.0% of OFE's" in complete[1]
    assert "20.0% of OFE's" in complete[1] and complete[2].endswith(": seed 0: score 0.0 < 50% of OFE's mean 100.0.")
    decided = study_verdict(_study([(s, 100.0) for s in range(3)], [(s, 96.0) for s in range(3)]))
    assert decided[1].startswith("**Outcome: supported**") and decided[2].endswith("none so far.")


def test_study_verdict_reads_a_share_just_below_the_criterion_as_not_met():
    lines = study_verdict(_study([(s, 1000.0) for s in range(3)], [(s, 949.0) for s in range(3)]))
    assert lines[1].startswith("**Outcome: not supported**") and "94.9% of OFE's" in lines[1]


def test_study_verdict_refuses_to_decide_without_a_score():
    lines = study_verdict(_study([(s, 100.0) for s in range(3)], [(0, 100.0), (1, float("nan")), (2, 100.0)]))
    assert lines[1].startswith("**Outcome: undecided**") and "prune-b seed 1" in lines[1]
    assert "seed 1: no score" in lines[2]


def test_study_collapse_check_sees_each_critic_and_empty_layers():
    runs = _study([(s, 100.0) for s in range(3)], [(0, 100.0), (1, 40.0)])
    runs["prune-b"][0]["units"]["critic"] = [[16, 16], [1, 0]]  # one critic gone, its twin whole
    runs["prune-b"][1]["units"]["phi_o"] = [1, 1, 0, 0, 0, 0]
    del runs["prune-b"][1]["units"]["critic"]
    lines = study_verdict(runs)
    assert "seed 0: critic1 has a layer pruned to 0 units" in lines[2] and "critic0" not in lines[2]
    assert "seed 1: phi_o has a layer pruned to 0 units" in lines[2]
    assert "seed 1: score 40.0 < 50% of OFE's mean 100.0" in lines[2]
    runs["prune-b"][0]["units"]["critic"] = [[16, 16], [1, 1]]
    assert "seed 0: critic1 pruned to 2 of 64 units" in study_verdict(runs)[2]
    del runs["prune-b"][0]["units"], runs["prune-b"][0]["history"]
    assert "seed 0: no unit counts in its summary (not checked)" in study_verdict(runs)[2]
