"""The peer methods: per-weight masks, PolyPruneSAC's cubic schedule, EauDeSAC's population."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch as th
from torch import nn

from sb3_ofexi import EauDeSAC, PolyPruneSAC
from sb3_ofexi.common.export import export_policy, run_exported
from sb3_ofexi.common.masks import WeightMasks, cubic_sparsity, erk_densities, linear_layers
from sb3_ofexi.eaudesac.eaudesac import sample_sparsity
from sb3_ofexi.harness.cli import main as cli_main
from sb3_ofexi.harness.runs import param_counts
from sb3_ofexi.harness.zoo import main as zoo_main

SMALL = dict(learning_starts=64, batch_size=32, policy_kwargs=dict(net_arch=[32, 32]), seed=0, device="cpu")


def _masked_weights_are_zero(masks: WeightMasks) -> bool:
    return all(bool(th.all(layer.weight[~mask] == 0)) for layer, mask in masks.pairs())


# --- the masks ---------------------------------------------------------------------------------------
def test_erk_densities_keep_the_network_sparsity_and_cap_small_layers():
    shapes = [(32, 4), (32, 32), (1, 32)]
    densities = erk_densities(shapes, 0.9)
    sizes = [a * b for a, b in shapes]
    assert sum(d * n for d, n in zip(densities, sizes)) == pytest.approx(0.1 * sum(sizes))
    assert densities[1] < densities[0]  # the big square layer is the sparsest
    # a layer whose ERK density would exceed 1 is kept dense and the others are solved again
    assert erk_densities([(1, 100), (100, 100)], 0.5) == pytest.approx([1.0, (5050 - 100) / 10_000])
    assert erk_densities([(4, 4), (4, 4)], 0.5) == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError, match="sparsity"):
        erk_densities(shapes, 1.0)


def test_cubic_schedule():
    assert cubic_sparsity(100, 0.9, 200, 800) == 0.0
    assert cubic_sparsity(500, 0.9, 200, 800) == pytest.approx(0.9 * (1 - 0.5**3))
    assert cubic_sparsity(900, 0.9, 200, 800) == 0.9


@pytest.mark.parametrize("distribution", ["erk", "uniform", "global"])
def test_masks_keep_the_largest_weights_and_only_shrink(distribution):
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    masks = WeightMasks({"net": linear_layers(net)}, distribution)
    masks.update_("net", 0.5)
    assert masks.sparsity("net") == pytest.approx(0.5, abs=0.02)
    assert _masked_weights_are_zero(masks)
    for layer, mask in masks.pairs():
        if distribution != "global" and mask.any() and (~mask).any():
            assert layer.weight[mask].abs().min() >= layer.weight.abs()[~mask].max()
    before = [mask.clone() for _, mask in masks.pairs()]
    with th.no_grad():
        for layer, _ in masks.pairs():
            layer.weight.add_(1.0)  # pruned weights would now be large: they must stay pruned
    masks.update_("net", 0.6)
    for (_, mask), old in zip(masks.pairs(), before):
        assert not th.any(mask & ~old)


# --- PolyPruneSAC --------------------------------------------------------------------------------------
def test_polyprune_follows_the_cubic_schedule_and_holds_masked_weights_at_zero():
    model = PolyPruneSAC("MlpPolicy", "Pendulum-v1", mask_update_freq=50, **SMALL)
    dense = model.param_counts()
    model.learn(600)
    assert model.schedule_steps() == (120, 480)
    assert model.current_sparsity == 0.9
    sparsities = model.sparsities()
    assert set(sparsities) == {"actor", "critic"} and all(
        s == pytest.approx(0.9, abs=0.01) for s in sparsities.values()
    )
    masks = model.policy.weight_masks
    assert _masked_weights_are_zero(masks)
    # Adam's moments of masked entries are zero: the next updates of those weights are exactly 0
    for optimizer in (model.actor.optimizer, model.critic.optimizer):
        for layer, mask in masks.pairs():
            state = optimizer.state.get(layer.weight)
            if state:
                assert th.all(state["exp_avg"][~mask] == 0) and th.all(state["exp_avg_sq"][~mask] == 0)
    counts = model.param_counts()
    actor_pruned = sum(int((~m).sum()) for n, m in masks.named_buffers() if n.startswith("actor"))
    critic_pruned = sum(int((~m).sum()) for n, m in masks.named_buffers() if n.startswith("critic"))
    assert counts == {"deploy": dense["deploy"] - actor_pruned, "train": dense["train"] - actor_pruned - critic_pruned}
    assert param_counts(model) == counts
    # the dense target follows the masked critic by Polyak: its masked entries decay, they are not cut
    assert any(th.any(t.weight != 0) for (_, t) in linear_layers(model.critic_target))


def test_polyprune_critic_only_and_an_absolute_schedule():
    model = PolyPruneSAC(
        "MlpPolicy",
        "Pendulum-v1",
        prune_actor=False,
        prune_start=100,
        prune_end=300,
        final_sparsity=0.5,
        mask_update_freq=100,
        **SMALL,
    )
    model.learn(400)
    assert model.sparsities() == {"critic": pytest.approx(0.5, abs=0.01)}
    assert model.param_counts()["deploy"] == sum(p.numel() for p in model.actor.parameters())


def test_polyprune_save_load_resume_keeps_masks_and_schedule(tmp_path):
    model = PolyPruneSAC("MlpPolicy", "Pendulum-v1", mask_update_freq=50, **SMALL)
    model.learn(300)
    model.save(tmp_path / "pp")
    loaded = PolyPruneSAC.load(tmp_path / "pp", env="Pendulum-v1", device="cpu")
    assert loaded.current_sparsity == model.current_sparsity and loaded._last_mask_update == model._last_mask_update
    for (_, a), (_, b) in zip(model.policy.weight_masks.pairs(), loaded.policy.weight_masks.pairs()):
        assert th.equal(a, b)
    obs = np.zeros((1, 3), dtype=np.float32)
    assert np.allclose(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    loaded.learn(200, reset_num_timesteps=False)
    assert _masked_weights_are_zero(loaded.policy.weight_masks)
    assert loaded.current_sparsity >= model.current_sparsity


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(final_sparsity=1.0), "final_sparsity"),
        (dict(prune_start=0.8, prune_end=0.2), "prune_end"),
        (dict(prune_start=-1), "prune_start"),
        (dict(mask_update_freq=0), "mask_update_freq"),
        (dict(mask_distribution="random"), "mask_distribution"),
        (dict(policy_kwargs=dict(prune_actor=False)), "disagrees"),
    ],
)
def test_polyprune_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PolyPruneSAC("MlpPolicy", "Pendulum-v1", **kwargs)


# --- EauDeSAC ------------------------------------------------------------------------------------------
def test_sample_sparsity_is_capped_and_scaled():
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = rng.uniform(0, 0.95)
        new = sample_sparsity(rng, s, step=1000, end=2000, period=100, regime=2.0, max_jump=0.1)
        assert s <= new <= s + 0.1 * (1 - s) + 1e-12
        assert new - s <= 2.0 * (1 - s) * 100 / 1000 + 1e-12
    # near the end of training the line is steep: the cap binds
    assert sample_sparsity(np.random.default_rng(1), 0.5, 1990, 2000, 100, 2.0, 0.1) == pytest.approx(0.55)


def test_eaudesac_selection_elitism_tournaments_and_reset():
    model = EauDeSAC("MlpPolicy", "Pendulum-v1", selection_period=10_000, **SMALL)
    model.learn(200)  # Adam has state for every member; no selection yet
    members = model.critic.members
    weights = [{k: v.clone() for k, v in m.state_dict().items()} for m in members]
    model.cumulated_losses = [5.0, 1.0, 3.0, 4.0, 2.0]
    model._select()
    assert model.elite == 1 and model.selections == 1 and model.cumulated_losses == [0.0] * 5
    for key, value in members[1].state_dict().items():  # the winner is kept as it is
        assert th.equal(value, weights[1][key])
    replaced = [k for k in range(5) if model.member_sparsities[k] > 0]
    assert replaced and 1 not in replaced
    for k in replaced:  # a duplicate: pruned further, with a fresh optimizer
        assert all(p not in model.critic.optimizer.state for p in members[k].parameters())
        assert model.member_sparsities[k] <= 0.1 + 1e-9
    kept = [k for k in range(5) if k not in replaced]
    for k in kept:
        assert all(p in model.critic.optimizer.state for p in members[k].parameters())
    assert _masked_weights_are_zero(model.policy.weight_masks)


def test_eaudesac_learns_a_sparsity_and_counts_its_population(tmp_path):
    model = EauDeSAC("MlpPolicy", "Pendulum-v1", selection_period=50, **SMALL)
    dense = model.param_counts()
    model.learn(700)
    assert model.selections == (700 - 64) // 50
    assert 0 < model.target_sparsity() < 1 and model.sparsity_history
    masks = model.policy.weight_masks
    assert _masked_weights_are_zero(masks)
    critic_params = sum(p.numel() for p in model.critic.parameters())
    assert dense["train"] == dense["deploy"] + critic_params  # the whole population of K critics
    counts = model.param_counts()
    assert counts["deploy"] == dense["deploy"]  # the actor is never pruned
    assert counts["train"] == dense["train"] - sum(int((~m).sum()) for _, m in masks.pairs())
    # the target carries the elite's mask
    elite_masks = [m for _, m in masks.pairs(model.policy.member_group(model.elite))]
    for (_, layer), mask in zip(linear_layers(model.critic_target), elite_masks):
        assert th.all(layer.weight[~mask] == 0)
    model.save(tmp_path / "eds")
    loaded = EauDeSAC.load(tmp_path / "eds", env="Pendulum-v1", device="cpu")
    assert loaded.member_sparsities == model.member_sparsities and loaded.elite == model.elite
    assert loaded.sparsities() == model.sparsities()
    assert loaded._population_rng.bit_generator.state == model._population_rng.bit_generator.state
    loaded.learn(200, reset_num_timesteps=False)
    assert _masked_weights_are_zero(loaded.policy.weight_masks)


def test_eaudesac_period_in_env_steps_counts_every_env():
    from stable_baselines3.common.env_util import make_vec_env

    model = EauDeSAC("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=2, seed=0), selection_period=1000, **SMALL)
    assert model._env_steps_per_period() == 2000  # one gradient step per 2 env steps
    model = EauDeSAC("MlpPolicy", "Pendulum-v1", selection_period=1000, gradient_steps=4, train_freq=2, **SMALL)
    assert model._env_steps_per_period() == 500
    with pytest.raises(ValueError, match="train_freq"):
        EauDeSAC("MlpPolicy", "Pendulum-v1", train_freq=(1, "episode"), **SMALL)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(population_size=1), "population_size"),
        (dict(selection_period=0), "selection_period"),
        (dict(tournament_size=9), "tournament_size"),
        (dict(regime=0), "regime"),
        (dict(max_jump=0), "max_jump"),
        (dict(actor_critic="mean"), "actor_critic"),
        (dict(target_update_interval=2), "target_update_interval"),
        (dict(policy_kwargs=dict(share_features_extractor=True)), "share_features_extractor"),
    ],
)
def test_eaudesac_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EauDeSAC("MlpPolicy", "Pendulum-v1", **kwargs)


# --- export, harness, rl-zoo3 ----------------------------------------------------------------------------
def test_masked_actor_exports_through_the_common_exporter(tmp_path):
    model = PolyPruneSAC("MlpPolicy", "Pendulum-v1", mask_update_freq=50, **SMALL)
    model.learn(500)
    export_policy(model, tmp_path / "pp.onnx")  # checked against predict to 1e-5 inside
    obs = np.random.default_rng(0).uniform(-1, 1, (4, 3)).astype(np.float32)
    np.testing.assert_allclose(
        run_exported(tmp_path / "pp.onnx", obs), model.predict(obs, deterministic=True)[0], atol=1e-5
    )


def test_compare_runs_the_peers_and_reports_their_cost(tmp_path, capsys):
    out = tmp_path / "runs" / "Pendulum-v1"
    code = cli_main(
        [
            "compare",
            "--env",
            "Pendulum-v1",
            "--methods",
            "sac,polyprune,eaudesac",
            "--seeds",
            "1",
            "--timesteps",
            "1500",
            "--eval-freq",
            "500",
            "--eval-episodes",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = (out / "report.md").read_text()
    assert "## What the savings buy" in report and "sparsity_over_time.png" in report
    numbers = json.loads((out / "report.json").read_text())["methods"]
    for method in ("sac", "polyprune", "eaudesac"):
        assert numbers[method]["deploy_latency_ms"] > 0 and numbers[method]["train_step_ms"] > 0
    assert numbers["polyprune"]["critic_sparsity"] > 0 and numbers["sac"]["critic_sparsity"] is None
    summary = json.loads((out / "polyprune" / "seed0" / "summary.json").read_text())
    assert (
        summary["params"]["deploy"]
        < json.loads((out / "sac" / "seed0" / "summary.json").read_text())["params"]["deploy"]
    )
    # the summary describes model.zip (the timing's gradient steps come after it)
    saved = EauDeSAC.load(out / "eaudesac" / "seed0" / "model.zip", device="cpu")
    eaudesac_summary = json.loads((out / "eaudesac" / "seed0" / "summary.json").read_text())
    assert saved.param_counts() == eaudesac_summary["params"] and saved.sparsities() == eaudesac_summary["sparsities"]
    # re-measuring from model.zip writes speed.json, which the report then uses
    assert cli_main(["measure", str(out / "eaudesac" / "seed0")]) == 0
    assert json.loads((out / "eaudesac" / "seed0" / "speed.json").read_text())["train_step_ms"] > 0

    # the results page: small files published, a report per task, one page; rebuilt identically
    results, page = tmp_path / "docs" / "results", tmp_path / "docs" / "RESULTS.md"
    assert cli_main(["results", str(results), "--publish", str(tmp_path / "runs"), "--out", str(page)]) == 0
    published = {p.name for p in results.rglob("*") if p.is_file()}
    assert {"summary.json", "evaluations.npz", "speed.json", "report.md"} <= published
    assert not any(name.endswith(".zip") for name in published)
    text = page.read_text()
    assert "## Pendulum-v1" in text and "| eaudesac |" in text and "### What the savings buy" in text
    assert cli_main(["results", str(results), "--out", str(page)]) == 0
    assert page.read_text() == text
    # published runs have no model: `measure` times a rebuilt model where the sizes allow it (sac:
    # nothing pruned); the masked peers keep their own timings, and say so
    capsys.readouterr()
    assert cli_main(["measure", str(results / "Pendulum-v1")]) == 0
    said = capsys.readouterr().out
    assert "polyprune/seed0: no model.zip and pruned" in said and "eaudesac/seed0: no model.zip and pruned" in said
    speed = json.loads((results / "Pendulum-v1" / "sac" / "seed0" / "speed.json").read_text())
    assert speed["source"].startswith("sb3-ofexi measure (rebuilt") and speed["deploy_latency_ms"] > 0
    eaudesac_speed = json.loads((results / "Pendulum-v1" / "eaudesac" / "seed0" / "speed.json").read_text())
    assert eaudesac_speed["source"] == "sb3-ofexi measure (model.zip)", "the timing from its model is kept"


def test_cli_export_of_a_peer_model(tmp_path):
    model = EauDeSAC("MlpPolicy", "Pendulum-v1", **SMALL)
    model.learn(100)
    model.save(tmp_path / "m")
    assert cli_main(["export", str(tmp_path / "m.zip"), str(tmp_path / "m.onnx"), "--algo", "eaudesac"]) == 0
    assert (tmp_path / "m.onnx").stat().st_size > 0
    assert cli_main(["export", str(tmp_path / "m.zip"), str(tmp_path / "auto.onnx")]) == 0  # --algo auto
    assert (tmp_path / "auto.onnx").read_bytes() == (tmp_path / "m.onnx").read_bytes()
    assert cli_main(["export", str(tmp_path / "m.zip"), str(tmp_path / "m.onnx"), "--algo", "ppo"]) == 2


@pytest.mark.parametrize("algo, conf", [("polyprune_sac", "polyprune_sac.yml"), ("eaudesac", "eaudesac.yml")])
def test_rl_zoo3_trains_the_peers(tmp_path, monkeypatch, algo, conf):
    from tests.test_zoo_cli import HYPERPARAMS

    monkeypatch.chdir(tmp_path)
    assert (
        zoo_main(
            [
                "train",
                "--algo",
                algo,
                "-conf",
                str(HYPERPARAMS / conf),
                "--env",
                "Pendulum-v1",
                "-n",
                "300",
                "-f",
                "logs",
                "--seed",
                "0",
                "--eval-freq",
                "-1",
                "-params",
                "learning_starts:100",
            ]
        )
        == 0
    )
    assert (tmp_path / "logs" / algo / "Pendulum-v1_1" / "Pendulum-v1.zip").exists()
