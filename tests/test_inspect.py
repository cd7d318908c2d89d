"""`sb3-ofexi inspect`: what a saved model, a running run's newest checkpoint or a parked one holds
now, with the class found from the file (also `export --algo auto`)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from sb3_contrib import TQC, CrossQ
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise

from sb3_ofexi import SAC_OFEXi, TD3_OFEXi, TQC_OFEXi
from sb3_ofexi.eaudesac import EauDeSAC
from sb3_ofexi.harness.checkpoint import write_checkpoint
from sb3_ofexi.harness.cli import main as cli_main
from sb3_ofexi.harness.inspection import algo_of, model_file
from sb3_ofexi.harness.park import park
from sb3_ofexi.polyprune import PolyPruneSAC

SMALL = dict(ofe_layers=2, ofe_units=8, learning_starts=64, batch_size=32, seed=0, device="cpu", compile_step=False)
# test-sized nu: units are pruned within a few hundred steps
AGGRESSIVE = dict(nu_ofe=1e-3, nu_actor=3e-2, nu_critic=3e-2, theta_lr=0.05, prune_freq=50)


def _prune_b(**kwargs):
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=0)
    config = {**SMALL, **AGGRESSIVE, "xi_start": 100, "xi_round": 400, "theta_diagnostics_freq": 100, **kwargs}
    return SAC_OFEXi("MlpPolicy", env, preset="prune-b", policy_kwargs={"net_arch": [16, 16]}, **config)


def test_a_learning_model_shows_its_schedule_sizes_layers_and_diagnostics(tmp_path, capsys):
    model = _prune_b()
    model.learn(300)  # thetas learning since step 100, rounding at 400
    model.save(tmp_path / "model.zip")

    assert cli_main(["inspect", str(tmp_path / "model.zip")]) == 0
    text = capsys.readouterr().out
    assert "SAC_OFEXi, preset prune-b" in text and "env steps 300 of 300" in text
    assert "thetas: learning since env step 100" in text and "rounded at env step 400 (xi_round)" in text
    assert "\n| phi_o[0] | " in text and "\n| critic1[1] | " in text
    assert "diagnostics of env step 300" in text and "| task grad | signed | push | Adam rate |" in text
    row = next(line for line in text.splitlines() if line.startswith("| critic0[0] | ")).rstrip(" |").split(" | ")

    assert cli_main(["inspect", str(tmp_path / "model.zip"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert info["params"] == model.param_counts() and info["phase"] == "learning"
    diag = next(d for d in info["diagnostics"] if d["layer"] == "critic0[0]")
    assert row[5:9] == [f"{diag[k]:.3g}" for k in ("task_grad", "task_grad_signed", "push", "adam_rate")]
    for name, gate in model.policy.xi_layers().items():
        theta = gate.theta.detach().numpy()
        alive = theta >= model.config.theta_tol
        assert info["layers"][name]["alive"] == int(alive.sum())
        assert info["layers"][name]["undecided"] == pytest.approx((alive & (theta < 0.9)).sum() / max(alive.sum(), 1))
    assert {row["layer"] for row in info["diagnostics"]} == set(model.policy.xi_layers())


def test_a_run_folder_shows_its_newest_checkpoint_and_a_parked_folder_its_parked_one(tmp_path, capsys):
    model = _prune_b(xi_start=50, xi_round=200)
    model.learn(250)  # rounded at 200: units at 0 removed
    run_dir = tmp_path / "run"
    checkpoint = write_checkpoint(run_dir, model, {"train": model.get_env()}, {"wall_s": 1.0})
    assert model_file(run_dir) == checkpoint / "model.zip"
    (run_dir / "progress.json").write_text('{"status": "running", "timesteps": 262, "steps_per_s": 40.0}')
    assert cli_main(["inspect", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert "env steps 250 of 250" in text and "the run (running): env step 262, 40.0 env steps/s\n" in text
    assert "thetas: rounded to 0/1 at env step 200" in text and "undecided just before rounding: phi_o" in text
    deploy = model.param_counts()["deploy"]
    start = model.theta_control.initial_param_counts["deploy"]
    assert deploy < start and f"deploy params {deploy:,} ({deploy / start:.0%} of {start:,} at the start)" in text

    park(run_dir, tmp_path / "parked")
    assert model_file(tmp_path / "parked").name == "model-250.zip"
    assert cli_main(["inspect", str(tmp_path / "parked"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["env_steps"] == 250


def test_before_learning_and_without_gates_the_schedule_is_said(tmp_path, capsys):
    _prune_b().save(tmp_path / "new.zip")  # no learn() budget yet: the points given in env steps
    assert cli_main(["inspect", str(tmp_path / "new.zip")]) == 0
    assert "thetas: frozen at 1 until env step 100 (xi_start), then learning; rounded at env step 400" in (
        capsys.readouterr().out
    )
    _prune_b(xi_round=1.0).save(tmp_path / "never.zip")
    assert cli_main(["inspect", str(tmp_path / "never.zip")]) == 0
    assert "then learning; never rounded (xi_round=1.0)" in capsys.readouterr().out
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=0)
    SAC_OFEXi("MlpPolicy", env, preset="ofe", **SMALL).save(tmp_path / "ofe.zip")
    assert cli_main(["inspect", str(tmp_path / "ofe.zip")]) == 0
    text = capsys.readouterr().out
    assert "thetas: none" in text and "| layer |" not in text


def test_the_class_is_read_from_the_file(tmp_path):
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=0)
    small = dict(learning_starts=10, batch_size=8, buffer_size=200, seed=0, device="cpu")
    models = {
        "sac": SAC("MlpPolicy", env, policy_kwargs={"net_arch": [8]}, **small),
        "tqc": TQC("MlpPolicy", env, policy_kwargs={"net_arch": [8], "n_quantiles": 3}, **small),
        "polyprune_sac": PolyPruneSAC("MlpPolicy", env, policy_kwargs={"net_arch": [8]}, **small),
        "eaudesac": EauDeSAC("MlpPolicy", env, policy_kwargs={"net_arch": [8]}, **small),
        "td3": TD3("MlpPolicy", env, policy_kwargs={"net_arch": [8]}, **small),
        "crossq": CrossQ("MlpPolicy", env, policy_kwargs={"net_arch": [8]}, **small),
        "sac_ofexi": SAC_OFEXi("MlpPolicy", env, preset="ofe", policy_kwargs={"net_arch": [8]}, **{**small, **SMALL}),
        "td3_ofexi": TD3_OFEXi(
            "MlpPolicy",
            env,
            preset="ofe",
            action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)),
            policy_kwargs={"net_arch": [8]},
            **{**small, **SMALL},
        ),
        "tqc_ofexi": TQC_OFEXi(
            "MlpPolicy", env, preset="ofe", policy_kwargs={"net_arch": [8], "n_quantiles": 3}, **{**small, **SMALL}
        ),
    }
    for name, model in models.items():
        model.save(tmp_path / f"{name}.zip")
        assert algo_of(tmp_path / f"{name}.zip") == name
    # the name an OFEXi file gives comes before its policy class (here made to disagree)
    with zipfile.ZipFile(tmp_path / "sac_ofexi.zip") as source:
        members = {name: source.read(name) for name in source.namelist()}
    data = json.loads(members["data"])
    data["policy_kwargs"]["ofexi_algorithm"] = "TQC_OFEXi"
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(tmp_path / "renamed.zip", "w") as target:
        for name, content in members.items():
            target.writestr(name, content)
    assert algo_of(tmp_path / "renamed.zip") == "tqc_ofexi"


def test_bad_paths_are_said(tmp_path, capsys):
    assert cli_main(["inspect", str(tmp_path / "missing.zip")]) == 2
    assert "No such model file or run folder" in capsys.readouterr().err
    assert cli_main(["inspect", str(tmp_path)]) == 2
    assert "holds no model: accepted: a model .zip" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("not a model")
    assert cli_main(["inspect", str(tmp_path / "notes.txt")]) == 2
    assert "notes.txt: not a model saved by SB3's save()" in capsys.readouterr().err
    assert cli_main(["inspect", str(tmp_path / "notes.txt"), "--algo", "ppo"]) == 2
    assert "--algo 'ppo': accepted: auto, sac_ofexi" in capsys.readouterr().err
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=0)
    TD3("MlpPolicy", env, policy_kwargs={"net_arch": [8]}, buffer_size=10, device="cpu").save(tmp_path / "td3.zip")
    assert cli_main(["inspect", str(tmp_path / "td3.zip"), "--algo", "tqc"]) == 2
    assert "TQC cannot load it" in capsys.readouterr().err
