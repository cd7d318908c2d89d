"""Sweeps: resume after a kill, failures that do not stop the others, the Ray backend, MuJoCo env snapshots."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from sb3_ofexi.harness.checkpoint import env_restore, env_snapshot, remove_checkpoints
from sb3_ofexi.harness.cli import main as cli_main
from sb3_ofexi.harness.park import park, unpark
from sb3_ofexi.harness.runs import RunSpec
from sb3_ofexi.harness.sweep import run_sweep

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL_ENTRY = {
    "policy": "MlpPolicy",
    "learning_rate": 1e-3,
    "buffer_size": 5000,
    "batch_size": 32,
    "learning_starts": 100,
}
SMALL = {
    "sac_ofexi_prune_b": {
        **SMALL_ENTRY,
        "preset": "prune-b",
        "ofe_layers": 2,
        "ofe_units": 8,
        "policy_kwargs": "dict(net_arch=[16, 16])",
        "xi_start": 0.25,
        "theta_lr": 0.01,
        "prune_freq": 100,
        "ofe_pretrain_steps": 20,
    },
    "sac_ofexi_ofe": {
        **SMALL_ENTRY,
        "preset": "ofe",
        "ofe_layers": 2,
        "ofe_units": 8,
        "policy_kwargs": "dict(net_arch=[16, 16])",
        "ofe_pretrain_steps": 20,
    },
    "sac": {**SMALL_ENTRY, "policy_kwargs": "dict(net_arch=[16, 16])"},
}
#: summary keys that may differ between an interrupted and an uninterrupted run
HOW_IT_RAN = {
    "wall_s",
    "sittings",
    "threads",
    "speed",
    "measure_speed",
    "progress_bar",
    "out_dir",
    "checkpoint_steps",
    "checkpoint_seconds",
}


def _hyperparams(tmp_path, overrides=None):
    folder = tmp_path / "hyperparams"
    folder.mkdir(exist_ok=True)
    for stem, entry in SMALL.items():
        entry = {**entry, **(overrides or {}).get(stem, {}), "n_timesteps": 1500}
        (folder / f"{stem}.yml").write_text(yaml.safe_dump({"Pendulum-v1": entry}))
    return folder


def _compare_args(out, hyperparams, methods="prune-b", timesteps=1500):
    return [
        "compare",
        "--env",
        "Pendulum-v1",
        "--methods",
        methods,
        "--seeds",
        "1",
        "--timesteps",
        str(timesteps),
        "--eval-freq",
        "250",
        "--eval-episodes",
        "1",
        "--hyperparams",
        str(hyperparams),
        "--out",
        str(out),
        "--checkpoint-steps",
        "200",
        "--no-speed",  # timings are tested in test_peers; here they only cost time
    ]


def _summary(out, method="prune-b"):
    summary = json.loads((out / method / "seed0" / "summary.json").read_text())
    return {k: v for k, v in summary.items() if k not in HOW_IT_RAN}


def test_killed_run_resumes_to_the_same_summary(tmp_path):
    hyperparams = _hyperparams(tmp_path)
    steps = 1000  # killed at >= 600, while the thetas learn (250 to 800)
    assert cli_main(_compare_args(tmp_path / "straight", hyperparams, timesteps=steps)) == 0

    out = tmp_path / "killed"
    run_dir = out / "prune-b" / "seed0"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "sb3_ofexi.cli", *_compare_args(out, hyperparams, timesteps=steps)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    killed_at = None
    while time.monotonic() < deadline and process.poll() is None:
        pointer = run_dir / "checkpoint.json"
        if pointer.exists() and json.loads(pointer.read_text())["num_timesteps"] >= 600:
            os.killpg(process.pid, signal.SIGKILL)  # no clean-up of any kind
            killed_at = json.loads(pointer.read_text())["num_timesteps"]
            break
        time.sleep(0.02)
    process.wait()
    assert killed_at is not None, "the run ended before it could be killed mid-way"
    assert not (run_dir / "summary.json").exists()
    # the run goes on on "another machine": its checkpoint parked, the folder's checkpoints gone, unparked
    park(run_dir, tmp_path / "parked")
    remove_checkpoints(run_dir)
    assert unpark(tmp_path / "parked", run_dir).name == f"checkpoint-{killed_at}"

    assert cli_main(_compare_args(out, hyperparams, timesteps=steps)) == 0  # the same command resumes
    resumed = json.loads((run_dir / "summary.json").read_text())
    assert resumed["sittings"] == 2
    assert _summary(out) == _summary(tmp_path / "straight")
    assert not list(run_dir.glob("checkpoint*")), "a finished run keeps no checkpoint"
    # --resume with only --out, after everything finished: nothing is run again
    assert cli_main(["compare", "--out", str(out), "--resume"]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["sittings"] == 2


def test_failing_run_does_not_stop_the_sweep_and_is_retried(tmp_path, capsys):
    bad = _hyperparams(tmp_path, {"sac_ofexi_ofe": {"rho": 5.0}})  # SAC_OFEXi raises a ValueError
    out = tmp_path / "sweep"
    code = cli_main(_compare_args(out, bad, methods="sac,ofe", timesteps=300))
    assert code == 1
    failed = json.loads((out / "ofe" / "seed0" / "failed.json").read_text())
    assert "rho=5.0" in failed["error"] and "Traceback" in failed["traceback"]
    assert (out / "sac" / "seed0" / "summary.json").exists()
    report = (out / "report.md").read_text()
    assert "## Failed runs" in report and "| ofe | 0 | ValueError: rho=5.0" in report
    assert "FAILED: ofe seed 0" in capsys.readouterr().out

    sac_before = (out / "sac" / "seed0" / "summary.json").read_text()
    good = _hyperparams(tmp_path)  # fixed: the re-run retries only the failed run
    assert cli_main(_compare_args(out, good, methods="sac,ofe", timesteps=300)) == 0
    assert (out / "sac" / "seed0" / "summary.json").read_text() == sac_before
    assert (out / "ofe" / "seed0" / "summary.json").exists() and not (out / "ofe" / "seed0" / "failed.json").exists()
    assert "## Failed runs" not in (out / "report.md").read_text()


def test_finished_run_with_other_settings_is_not_mixed_in(tmp_path, capsys):
    hyperparams = _hyperparams(tmp_path)
    out = tmp_path / "sweep"
    assert cli_main(_compare_args(out, hyperparams, methods="sac", timesteps=300)) == 0
    assert cli_main(_compare_args(out, hyperparams, methods="sac", timesteps=400)) == 2
    assert "other settings" in capsys.readouterr().err


def test_ray_backend_writes_what_the_local_backend_writes(tmp_path):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'sb3_ofexi[ray]')")
    hyperparams = _hyperparams(tmp_path)

    def specs(out):
        # one torch thread in both: another thread count sums in another order (not bit-identical)
        return [
            RunSpec(
                method,
                "Pendulum-v1",
                0,
                300,
                str(out),
                eval_freq=150,
                eval_episodes=1,
                hyperparams_dir=str(hyperparams),
                threads=1,
                measure_speed=False,
            )
            for method in ("sac", "prune-b")
        ]

    local = run_sweep(specs(tmp_path / "local"), jobs=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_sweep(specs(tmp_path / "ray"), backend="ray", num_cpus=1)
    finally:
        ray.shutdown()
    assert [r["status"] for r in remote] == ["done", "done"]
    for method in ("sac", "prune-b"):
        a, b = tmp_path / "local" / method / "seed0", tmp_path / "ray" / method / "seed0"
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        assert _summary(tmp_path / "local", method) == _summary(tmp_path / "ray", method)
    assert [r["score"] for r in local] == [r["score"] for r in remote]


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "Hopper-v5"])
def test_env_snapshot_continues_exactly(env_id):
    """MuJoCo envs are rebuilt from their constructor when unpickled: the snapshot restores physics and RNG."""
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(env_id, n_envs=1, seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (300, 1, env.action_space.shape[0])).astype(np.float32)
    for action in actions[:7]:
        env.step(action)
    copy = env_restore(env_snapshot(env))
    for action in actions[7:]:  # crosses episode ends (resets use the env's own RNG)
        a, b = env.step(action), copy.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_report_puts_the_papers_tables_next_to_ours():
    from sb3_ofexi.harness.report import paper_section

    section = paper_section("Hopper-v5", ["sac", "ofe", "prune-b"])
    assert section is not None and section.title.startswith("The paper's numbers for Hopper")
    lines = section.body
    assert "| prune-b | 3515 | 10% | 38% | 15 | 246 |" in lines
    assert any("Hopper-v2" in line and "Hopper-v5" in line for line in lines)
    assert "| ofe | 3548 | 100% | 100% | 139 | 651 |" in lines
    assert paper_section("Pendulum-v1", ["sac"]) is None


def test_cost_section_gives_medians_over_seeds():
    """Timings are medians over seeds: one run paused for hours (its wall time counts the pause) does not move them."""
    from sb3_ofexi.harness.report import cost_section

    def run(wall_s: float, latency_ms: float) -> dict:
        speed = {"deploy_latency_ms": latency_ms, "train_step_ms": 2 * latency_ms, "torch_threads": 1}
        return {"wall_s": wall_s, "params": {"deploy": 1000, "train": 3000}, "speed": speed}

    section, numbers = cost_section({"prune-b": [run(300.0, 0.02), run(10_000.0, 0.05), run(200.0, 0.03)]})
    lines = section.body
    assert numbers["prune-b"]["wall_s"] == 300.0
    assert numbers["prune-b"]["deploy_latency_ms"] == pytest.approx(0.03)
    assert numbers["prune-b"]["train_step_ms"] == pytest.approx(0.06)
    assert "| prune-b | 1.0 | 3.0 | - | 30.0 | 0.1 | 300 |" in lines
