"""Size budgets: nu steered by dual ascent, rounding fitted to the budget."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_ofexi import SAC_OFEXi
from sb3_ofexi.common.budget import M_MAX, dual_update, fit_to_budget, target_size
from tests.conftest import make_model, make_policy

# the small Pendulum budget entry's theta settings (hyperparams/sac_ofexi_budget.yml), on the test-sized nets
SHORT = dict(preset="prune-b", theta_lr=0.003, prune_freq=250, learning_starts=100)
STEPS = 700


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fraction", [0.3, 0.1])
@pytest.mark.parametrize("kind", ["deploy", "train"])
def test_budget_is_met_and_not_undershot(kind, fraction, seed):
    model = make_model(seed=seed, **SHORT, **{f"{kind}_budget": fraction})
    initial = model.param_counts()[kind]
    budget = model.theta_control.budgets()[kind]
    assert budget == round(fraction * initial)
    model.learn(STEPS)
    assert model.xi_phase == "rounded"
    final = model.param_counts()[kind]
    assert 0.6 * budget <= final <= budget, (final, budget, model.theta_control.nu_multipliers)
    assert (
        model.logger.name_to_value.get(f"xi/nu_multiplier_{kind}", 1.0) != 1.0
        or model.theta_control.nu_multipliers[kind] != 1.0
    )


def test_int_budget_and_both_budgets():
    model = make_model(**SHORT, deploy_budget=300, train_budget=0.4)
    budgets = model.theta_control.budgets()
    assert budgets["deploy"] == 300 and budgets["train"] == round(
        0.4 * model.theta_control.initial_param_counts["train"]
    )
    model.learn(STEPS)
    counts = model.param_counts()
    assert counts["deploy"] <= 300 and counts["train"] <= budgets["train"]


def _continue(model, steps, seed=7):
    model.set_random_seed(seed)
    model._last_obs = None  # start from a reset seeded the same way on both sides
    model.learn(steps, reset_num_timesteps=False)


def test_resumed_mid_learning_continues_with_the_same_multipliers(tmp_path):
    kwargs = dict(SHORT, xi_start=140, xi_round=560, deploy_budget=0.2)  # env steps: the budget grows on resume
    model = make_model(**kwargs)
    model.learn(350)
    assert model.xi_phase == "learning" and model.theta_control.nu_multipliers["deploy"] != 1.0
    model.save(tmp_path / "m")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = SAC_OFEXi.load(tmp_path / "m", env=make_vec_env("Pendulum-v1", n_envs=1), device="cpu")
    loaded.load_replay_buffer(tmp_path / "buffer")
    assert loaded.theta_control.nu_multipliers == model.theta_control.nu_multipliers
    assert (
        loaded.theta_control.initial_param_counts == model.theta_control.initial_param_counts
        and loaded.theta_control.budgets() == model.theta_control.budgets()
    )
    model.set_env(make_vec_env("Pendulum-v1", n_envs=1))
    _continue(model, 350)
    _continue(loaded, 350)
    assert loaded.xi_phase == model.xi_phase == "rounded"
    assert loaded.theta_control.nu_multipliers == model.theta_control.nu_multipliers
    assert loaded.param_counts() == model.param_counts()
    assert loaded.param_counts()["deploy"] <= model.theta_control.budgets()["deploy"]
    a, b = model.policy.state_dict(), loaded.policy.state_dict()
    assert all(th.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(deploy_budget=0), "int > 0"),
        (dict(deploy_budget=-5), "int > 0"),
        (dict(train_budget=1.0), r"\(0, 1\)"),
        (dict(train_budget=1.5), r"\(0, 1\)"),
        (dict(deploy_budget=0.0), r"\(0, 1\)"),
        (dict(deploy_budget=True), "invalid"),
        (dict(deploy_budget="20000"), "invalid"),
        (dict(deploy_budget=10**9), "larger than the initial deploy size"),
        (dict(train_budget=3), "below the smallest train size"),
        (dict(deploy_budget=0.3, use_xi=False), "use_xi=False"),
        (dict(deploy_budget=0.3, preset="ofe"), "use_xi=False"),
        (dict(deploy_budget=0.3, budget_rate=0), "budget_rate"),
    ],
)
def test_bad_budgets_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_model(**{"preset": "prune-b", **kwargs})


def test_target_path_and_dual_update():
    assert target_size(1000, 100, 10, 30, 5) == 1000
    assert target_size(1000, 100, 10, 30, 20) == pytest.approx(math.sqrt(1000 * 100))  # geometric
    assert target_size(1000, 100, 10, 30, 40) == 100
    assert dual_update(1.0, 200, 100, 0.5) == pytest.approx(math.exp(0.5))  # too big: nu up
    assert dual_update(1.0, 50, 100, 0.5) == pytest.approx(math.exp(-0.25))  # too small: nu down
    assert dual_update(1.0, 1e9, 1, 10.0) == M_MAX


def test_fit_drops_the_lowest_thetas_until_it_fits():
    rounded = [th.tensor([1.0, 1.0, 0.0, 1.0]), th.tensor([1.0, 1.0])]
    scores = [th.tensor([0.9, 0.55, 0.2, 0.6]), th.tensor([0.7, 0.52])]
    keep_one = [False, True]
    size = lambda: float(sum(t.sum() for t in rounded))  # noqa: E731
    assert fit_to_budget(rounded, scores, keep_one, size, budget=5) == 0
    assert fit_to_budget(rounded, scores, keep_one, size, budget=3) == 2  # 0.52, then 0.55
    assert rounded[0].tolist() == [1.0, 0.0, 0.0, 1.0] and rounded[1].tolist() == [1.0, 0.0]
    # the last unit of an MLP layer stays even when the budget cannot be met
    assert fit_to_budget(rounded, scores, keep_one, size, budget=0) == 2
    assert rounded[0].tolist() == [0.0, 0.0, 0.0, 0.0] and rounded[1].tolist() == [1.0, 0.0]


@pytest.mark.parametrize("mode", ["paper", "autograd"])
def test_regulariser_parts_split_the_gradient(mode):
    policy = make_policy()
    thetas = [g.theta for g in [*policy.ofe.phi_o.gates, *policy.ofe.phi_oa.gates]]
    whole = th.autograd.grad(policy.ofe_complexity(0.5).regulariser(mode), thetas)
    part_o, part_oa = policy.ofe_complexity(0.5).regulariser_parts(mode)
    grads_o = th.autograd.grad(part_o, thetas, allow_unused=True)
    grads_oa = th.autograd.grad(part_oa, thetas, allow_unused=True)
    n_o = len(policy.ofe.phi_o.gates)
    for i, (g, go, goa) in enumerate(zip(whole, grads_o, grads_oa)):
        own, other = (go, goa) if i < n_o else (goa, go)
        th.testing.assert_close(own, g)
        assert other is None or th.count_nonzero(other) == 0


def test_expected_counts_are_the_pruned_counts_at_rounded_thetas():
    policy = make_policy()
    generator = th.Generator().manual_seed(3)
    with th.no_grad():
        for name, theta in policy.named_parameters():
            if name.endswith("theta"):
                theta.copy_((th.rand(theta.shape, generator=generator) < 0.6).float())
    expected = {k: int(v) for k, v in policy.expected_param_counts().items()}
    policy.prune_(0.5)
    assert expected == policy.param_counts()
    np.testing.assert_equal(expected["deploy"] < expected["train"], True)


SMALL_YAML = """
Pendulum-v1:
  n_timesteps: 700
  policy: 'MlpPolicy'
  learning_rate: !!float 1e-3
  batch_size: 32
  learning_starts: 100
  preset: 'prune-b'
  ofe_layers: 2
  ofe_units: 8
  policy_kwargs: "dict(net_arch=[16, 16])"
  theta_lr: 0.003
  prune_freq: 250
"""


def _small_hyperparams(tmp_path):
    folder = tmp_path / "hyperparams"
    folder.mkdir()
    (folder / "sac_ofexi_prune_b.yml").write_text(SMALL_YAML)
    (folder / "sac_ofexi_budget.yml").write_text(SMALL_YAML + "  deploy_budget: 0.25\n")
    (folder / "sac_ofexi_ofe.yml").write_text(SMALL_YAML.replace("prune-b", "ofe"))
    (folder / "sac.yml").write_text("Pendulum-v1:\n  n_timesteps: 700\n  policy: 'MlpPolicy'\n  learning_starts: 100\n")
    return folder


def test_cli_train_and_compare_with_budgets(tmp_path, capsys):
    from sb3_ofexi.harness.cli import main as cli_main

    folder = _small_hyperparams(tmp_path)
    # timings are tested in test_peers; here they only cost time
    common = ["--env", "Pendulum-v1", "--eval-episodes", "1", "--hyperparams", str(folder), "--no-speed"]
    assert (
        cli_main(
            [
                "train",
                *common,
                "--method",
                "prune-b",
                "--deploy-budget",
                "200",
                "--out",
                str(tmp_path / "one"),
                "--no-progress",
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "one" / "prune-b" / "seed0" / "summary.json").read_text())
    assert summary["overrides"] == {"deploy_budget": 200}
    assert summary["budgets"]["deploy"]["budget"] == 200 and summary["budgets"]["deploy"]["met"]
    assert "deploy budget 200: " in capsys.readouterr().out

    out = tmp_path / "cmp"
    assert cli_main(["compare", *common, "--methods", "prune-b,budget", "--seeds", "1", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "## Size budgets" in report
    row = next(line for line in report.splitlines() if line.startswith("| budget | deploy |"))
    assert row.endswith("| 1 of 1 |")
    assert json.loads((out / "budget" / "seed0" / "summary.json").read_text())["budgets"]["deploy"]["met"]


def test_cli_budget_bad_input(tmp_path, capsys):
    from sb3_ofexi.harness.cli import main as cli_main

    folder = _small_hyperparams(tmp_path)
    common = ["--env", "Pendulum-v1", "--hyperparams", str(folder), "--out", str(tmp_path), "--no-progress"]
    assert cli_main(["train", *common, "--method", "sac", "--deploy-budget", "0.3"]) == 2
    assert "the OFEXi methods only" in capsys.readouterr().err
    assert cli_main(["train", *common, "--method", "prune-b", "--train-budget", "1.5"]) == 2
    assert "(0, 1)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["train", *common, "--method", "prune-b", "--deploy-budget", "lots"])
