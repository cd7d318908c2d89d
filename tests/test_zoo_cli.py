"""rl-zoo3 integration, the sb3-ofexi command line and the report."""

import json
import pathlib

import gymnasium as gym
import pytest
import yaml

from sb3_ofexi import SAC_OFEXi
from sb3_ofexi.harness.cli import main as cli_main
from sb3_ofexi.harness.registry import ALGOS, METHODS, is_ofexi
from sb3_ofexi.harness.report import PNG_CURVES, PNG_THETA, PNG_UNITS
from sb3_ofexi.harness.runs import action_noise, load_hyperparams
from sb3_ofexi.harness.zoo import main as zoo_main

HYPERPARAMS = pathlib.Path(__file__).resolve().parents[1] / "hyperparams"
YAML_FILES = sorted(HYPERPARAMS.glob("*.yml"))
#: every Gymnasium MuJoCo v5 task (InvertedPendulum-v5's entry is a small CPU entry)
MUJOCO_V5 = (
    "Ant",
    "HalfCheetah",
    "Hopper",
    "Humanoid",
    "HumanoidStandup",
    "InvertedDoublePendulum",
    "InvertedPendulum",
    "Pusher",
    "Reacher",
    "Swimmer",
    "Walker2d",
)
#: OFE blocks: 8 for HalfCheetah and 6 for the other MuJoCo tasks (paper section 5); 4 in small entries
PAPER_LAYERS = {f"{task}-v5": 8 if task == "HalfCheetah" else 6 for task in MUJOCO_V5 if task != "InvertedPendulum"}


def test_the_list_of_mujoco_v5_tasks_is_gymnasiums():
    import gymnasium as gym

    registered = {
        name.split("-")[0]
        for name in gym.registry
        if name.endswith("-v5") and "mujoco" in str(gym.registry[name].entry_point)
    }
    assert registered == set(MUJOCO_V5)


def test_hyperparams_folder_covers_every_method_and_env():
    assert any("ofexi" in f.name for f in YAML_FILES)
    for method, (stem, _) in METHODS.items():
        entries = yaml.safe_load((HYPERPARAMS / f"{stem}.yml").read_text())
        assert {f"{task}-v5" for task in MUJOCO_V5} | {"Pendulum-v1"} <= set(entries), method
        assert entries["HalfCheetah-v5"]["n_timesteps"] == 2e6 and entries["Hopper-v5"]["n_timesteps"] == 1e6
        if stem.startswith("sac_ofexi"):
            assert entries["HalfCheetah-v5"]["ofe_layers"] == 8 and entries["Walker2d-v5"]["ofe_layers"] == 6


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.name)
def test_every_yaml_entry_builds_a_model(path):
    method = next(m for m, (stem, _) in METHODS.items() if stem == path.stem)
    algo = METHODS[method][1]
    for env_id in yaml.safe_load(path.read_text()):
        hyperparams = load_hyperparams(method, env_id, HYPERPARAMS)
        assert hyperparams.pop("n_timesteps") > 0
        hyperparams["buffer_size"] = 10  # building, not training
        env = gym.make(env_id)
        hyperparams = action_noise(hyperparams, env.action_space.shape[0])  # TD3's noise_type / noise_std
        model = algo(env=env, device="cpu", **hyperparams)
        if is_ofexi(model):
            preset = method.removeprefix("td3-").removeprefix("tqc-")
            assert model.config.preset == preset or (method == "budget" and model.config.preset == "prune-b")
            assert (model.config.deploy_budget is not None) == (method == "budget")
            assert len(model.unit_counts()["phi_o"]) == PAPER_LAYERS.get(env_id, 4)


def test_rl_zoo3_train_and_enjoy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = [
        "--env",
        "Pendulum-v1",
        "-n",
        "300",
        "-f",
        "logs",
        "--seed",
        "0",
        "--eval-freq",
        "150",
        "--eval-episodes",
        "1",
        "-params",
        "learning_starts:100",
    ]
    assert (
        zoo_main(
            [
                "train",
                "--algo",
                "sac_ofexi",
                "-conf",
                str(HYPERPARAMS / "sac_ofexi_prune_b.yml"),
                "--device",
                "cpu",
                "--progress",
                *common,
                "ofe_pretrain_steps:10",
            ]
        )
        == 0
    )
    assert zoo_main(["train", "--algo", "sac", "-conf", str(HYPERPARAMS / "sac.yml"), *common]) == 0
    saved = tmp_path / "logs" / "sac_ofexi" / "Pendulum-v1_1" / "Pendulum-v1.zip"
    assert saved.exists() and (tmp_path / "logs" / "sac" / "Pendulum-v1_1" / "Pendulum-v1.zip").exists()
    assert SAC_OFEXi.load(saved).config.preset == "prune-b"
    for algo in ("sac_ofexi", "sac"):
        assert (
            zoo_main(
                [
                    "enjoy",
                    "--algo",
                    algo,
                    "--env",
                    "Pendulum-v1",
                    "-f",
                    "logs",
                    "--no-render",
                    "-n",
                    "20",
                    "--deterministic",
                ]
            )
            == 0
        )


@pytest.mark.parametrize("algo", ["td3_ofexi", "tqc_ofexi"])
def test_rl_zoo3_trains_td3_and_tqc_ofexi(algo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["train", "--algo", algo, "-conf", f"{algo}_prune_b", "--env", "Pendulum-v1", "-n", "300", "-f", "logs"]
    args += ["--seed", "0", "--eval-freq", "-1", "-params", "learning_starts:100", "ofe_pretrain_steps:10"]
    args += ["xi_start:0.5", "policy_kwargs:dict(net_arch=[16, 16])"]
    assert zoo_main([*args, "--device", "cpu"]) == 0
    saved = tmp_path / "logs" / algo / "Pendulum-v1_1" / "Pendulum-v1.zip"
    loaded = ALGOS[algo].load(saved)
    assert loaded.config.preset == "prune-b" and loaded.xi_phase == "rounded"


def test_the_generated_yaml_files_are_up_to_date():
    """hyperparams/td3*.yml, tqc*.yml, crossq.yml are what scripts/make_hyperparams.py writes from
    rl-zoo3's files and the SAC_OFEXi entries (rerun it after editing either)."""
    import subprocess
    import sys

    script = HYPERPARAMS.parent / "scripts" / "make_hyperparams.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zoo_usage_error():
    assert zoo_main([]) == 2
    assert zoo_main(["fly"]) == 2


def test_compare_writes_a_report_and_report_rebuilds_it(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = cli_main(
        [
            "compare",
            "--env",
            "Pendulum-v1",
            "--methods",
            "sac,ofe,prune-b",
            "--seeds",
            "1",
            "--timesteps",
            "1100",
            "--eval-freq",
            "550",
            "--eval-episodes",
            "1",
            "--jobs",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = (out / "report.md").read_text()
    for method in ("sac", "ofe", "prune-b"):
        rows = 4 if method == "prune-b" else 3  # two tables + timing (+ the thetas' schedule)
        assert sum(line.startswith(f"| {method} |") for line in report.splitlines()) == rows
        assert (out / method / "seed0" / "model.zip").exists()
        assert (out / method / "seed0" / "evaluations.npz").exists()
    assert "| dR | tR |" in report
    for png in (PNG_CURVES, PNG_UNITS, PNG_THETA):
        assert (out / png).stat().st_size > 1000
    numbers = json.loads((out / "report.json").read_text())
    assert numbers["methods"]["ofe"]["dR"] == 1.0 and numbers["methods"]["ofe"]["tR"] == 1.0
    assert "report:" in capsys.readouterr().out
    (out / "report.md").unlink()
    assert cli_main(["report", str(out)]) == 0
    assert (out / "report.md").read_text() == report


def test_cli_train_writes_model_evaluations_and_summary(tmp_path):
    code = cli_main(
        [
            "train",
            "--env",
            "Pendulum-v1",
            "--method",
            "ofe",
            "--timesteps",
            "1050",
            "--seed",
            "2",
            "--eval-episodes",
            "1",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert code == 0
    run = tmp_path / "ofe" / "seed2"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["seed"] == 2 and summary["timesteps"] == 1050 and summary["params"]["deploy"] > 0
    assert (run / "model.zip").exists() and (run / "evaluations.npz").exists()


def test_cli_bad_input(tmp_path, capsys):
    assert cli_main(["compare", "--env", "Pendulum-v1", "--methods", "sac,ppo", "--out", str(tmp_path)]) == 2
    assert "ppo" in capsys.readouterr().err
    assert cli_main(["train", "--env", "CartPole-v1", "--method", "ofe", "--out", str(tmp_path)]) == 2
    assert cli_main(["report", str(tmp_path / "nothing")]) == 2


@pytest.mark.parametrize("algo", ["sac_ofexi", "td3_ofexi"])
def test_rl_zoo3_optimize_ofexi(algo, tmp_path, monkeypatch):
    """rl-zoo3's sampler of the stock algorithm (SAC's, TD3's) plus OFEXiNet's keys, end to end (TQC's
    samples up to 512 gradient steps of batch 2048 a trial: its sampler is checked below instead)."""
    monkeypatch.chdir(tmp_path)
    assert (
        zoo_main(
            [
                "train",
                "--algo",
                algo,
                "--env",
                "Pendulum-v1",
                "-conf",
                f"{algo}_prune_b",
                "-optimize",
                "--n-trials",
                "2",
                "-n",
                "300",
                "--n-evaluations",
                "1",
                "--eval-episodes",
                "1",
                "--sampler",
                "random",
                "--pruner",
                "none",
                "--seed",
                "0",
                "-f",
                "logs",
                "-params",
                "learning_starts:200",
                "ofe_pretrain_steps:10",
                "prune_freq:100",
                "xi_start:0.2",  # TD3's Pendulum-v1 entry gives env step 12,000
            ]
        )
        == 0
    )
    (report,) = (tmp_path / "logs" / algo).glob("report_Pendulum-v1_2-trials-300-random-none_*.csv")
    text = report.read_text()
    for name in (
        "params_nu_ofe",
        "params_nu_actor",
        "params_nu_critic",
        "params_rho",
        "params_theta_lr",
        "params_ofe_units",
    ):
        assert name in text
    assert text.count("COMPLETE") == 2
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_SAMPLER

    assert {"sac_ofexi", "polyprune_sac", "eaudesac"} <= set(HYPERPARAMS_SAMPLER)  # the peers: SAC's sampler


@pytest.mark.parametrize("algo", ["sac_ofexi", "td3_ofexi", "tqc_ofexi"])
def test_optimize_samples_build_the_ofexi_algorithm(algo):
    """Each sampled trial (rl-zoo3's sampler of the stock algorithm plus OFEXiNet's keys), and a stored
    trial's params through the converter (``load_trial``), construct the algorithm with those values."""
    import optuna
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER

    from sb3_ofexi.harness.tuning import register_sampler

    register_sampler()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        trial = study.ask()
        args = {"using_her_replay_buffer": False, "her_kwargs": {}}
        sampled = HYPERPARAMS_SAMPLER[algo](trial, 1, 1, args)
        assert {"nu_ofe", "nu_actor", "nu_critic", "rho", "theta_lr", "ofe_units", "learning_rate"} <= set(sampled)
        for kwargs in (sampled, HYPERPARAMS_CONVERTER[algo](trial.params)):
            # the converter gives YAML-like values: rl-zoo3 turns noise_type / noise_std into action_noise
            kwargs = {k: v for k, v in kwargs.items() if k not in ("noise_type", "noise_std")}
            model = ALGOS[algo]("MlpPolicy", "Pendulum-v1", preset="prune-b", ofe_layers=2, device="cpu", **kwargs)
            assert model.config.nu_ofe == kwargs["nu_ofe"] and model.config.rho == kwargs["rho"]
            assert model.policy.ofe.phi_o.units == [kwargs["ofe_units"]] * 2
        study.tell(trial, 0.0)


def test_results_page_is_rebuilt_identically_from_the_committed_summaries(tmp_path, monkeypatch):
    import shutil

    root = pathlib.Path(__file__).resolve().parents[1]
    shutil.copytree(root / "docs", tmp_path / "docs")
    monkeypatch.chdir(tmp_path)
    # the command docs/RESULTS.md says it was generated by (scripts/study.sh publish runs it)
    assert (
        cli_main(["results", "docs/results", "--study", "docs/study", "--out", "docs/RESULTS.md", "--smooth", "5"]) == 0
    )
    assert (tmp_path / "docs" / "RESULTS.md").read_text() == (root / "docs" / "RESULTS.md").read_text()
    reports = sorted((root / "docs" / "results").glob("*/report.md"))
    assert len(reports) >= 2  # Hopper-v5 and at least one more MuJoCo task
    for report in reports:
        rebuilt = tmp_path / report.relative_to(root)
        assert rebuilt.read_text() == report.read_text()


def test_a_results_page_of_other_runs_names_its_commands_and_lists_every_run(tmp_path, monkeypatch):
    import shutil

    root = pathlib.Path(__file__).resolve().parents[1]
    shutil.copytree(root / "docs" / "results", tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    made_by = ["bash scripts/other.sh   # start / resume", "bash scripts/other.sh publish"]
    argv = ["results", "runs", "--out", "page.md", "--title", "Other runs"]
    assert cli_main([*argv, *(arg for line in made_by for arg in ("--made-by", line))]) == 0
    page = (tmp_path / "page.md").read_text()
    assert page.startswith("# Other runs\n") and "```bash\n" + "\n".join(made_by) + "\n```" in page
    assert "scripts/results.sh" not in page and "At this scale" not in page  # the 30k pages' own text
    overview = [line for line in page.splitlines() if line.startswith(("| Hopper-v5 |", "| HalfCheetah-v5 |"))]
    summaries = sorted((tmp_path / "runs").glob("*/*/seed*/summary.json"))
    assert len(overview) == len({(p.parents[2].name, p.parents[1].name) for p in summaries})
    seeds = [
        json.loads(p.read_text()) for p in (tmp_path / "runs" / "Hopper-v5" / "prune-b").glob("seed*/summary.json")
    ]
    deploy = sum(s["params"]["deploy"] for s in seeds) / len(seeds)
    row = next(line for line in overview if line.startswith("| Hopper-v5 | prune-b |"))
    assert f"| {len(seeds)} |" in row and f"| {deploy / 1e3:.1f} / " in row, "the mean size over the seeds"
