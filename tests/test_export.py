"""Deployment export (.onnx via onnxruntime, .pt via TorchScript) against model.predict."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from torch import nn

from sb3_ofexi.common.export import EXPORT_ATOL, _fold_norms, export_policy, run_exported
from sb3_ofexi.harness.cli import main as cli_main

from .conftest import make_model


class _AsymmetricBoundsEnv(gym.Env):
    """Action bounds that are neither symmetric nor equal, so SB3's rescaling is exercised."""

    observation_space = gym.spaces.Box(-5, 5, (4,), np.float32)
    action_space = gym.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([3.0, 5.0], np.float32))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.uniform(-1, 1, 4).astype(np.float32), {}

    def step(self, action):
        obs = self.np_random.uniform(-1, 1, 4).astype(np.float32)
        return obs, float(-np.square(action).sum()), False, False, {}


def _pruned_model(env="Pendulum-v1"):
    model = make_model(env=env, xi_start=0.1, xi_round=0.8, theta_lr=0.05, nu_actor=3e-3, nu_ofe=3e-3, prune_freq=50)
    model.learn(300)
    assert model.param_counts() != make_model(env=env).param_counts()
    return model


@pytest.fixture(scope="module")
def models():
    return {
        "fresh": make_model(env=_AsymmetricBoundsEnv()),
        "learning": make_model(env=_AsymmetricBoundsEnv(), xi_start=0.0, xi_round=1.0, theta_lr=0.05).learn(200),
        "pruned": _pruned_model(),
        "pruned_asym": _pruned_model(_AsymmetricBoundsEnv()),
    }


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
@pytest.mark.parametrize("which", ["fresh", "learning", "pruned", "pruned_asym"])
def test_exported_file_reproduces_deterministic_predict(tmp_path, models, suffix, which):
    model = models[which]
    path = tmp_path / f"policy{suffix}"
    deployed = model.export_policy(path)
    obs_dim = model.observation_space.shape[0]
    obs = np.random.default_rng(1).uniform(-2, 2, (37, obs_dim)).astype(np.float32)
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_allclose(run_exported(path, obs), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(run_exported(path, obs[:1]), expected[:1], atol=1e-5, rtol=0)
    # the exported graph holds phi_o and the actor's mean path only, at the pruned widths
    n_params = sum(p.numel() for p in deployed.parameters())
    assert n_params <= model.param_counts()["deploy"]


def test_bad_suffix_is_refused(tmp_path, models):
    with pytest.raises(ValueError, match=r"\.onnx, \.pt"):
        models["fresh"].export_policy(tmp_path / "policy.tflite")


def test_cli_export(tmp_path, models, capsys):
    models["pruned"].save(tmp_path / "m")
    assert cli_main(["export", str(tmp_path / "m.zip"), str(tmp_path / "out.onnx")]) == 0
    assert (tmp_path / "out.onnx").exists()
    assert "deploy params" in capsys.readouterr().out
    assert cli_main(["export", str(tmp_path / "missing.zip"), str(tmp_path / "x.onnx")]) == 2


@pytest.mark.parametrize(("offset", "raises"), [(4e-4, False), (6e-4, True)])
def test_export_check_tolerance_scales_with_the_action_bound(tmp_path, models, monkeypatch, offset, raises):
    """The check allows EXPORT_ATOL (1e-4) per unit of the largest action bound (5 here): float32
    rounding of the folded layers grows with the widths (OFE-Big's export differs by ~1e-5)."""
    from sb3_ofexi.common import export

    assert export.EXPORT_ATOL == 1e-4
    real = export.run_exported
    monkeypatch.setattr(export, "run_exported", lambda path, obs: real(path, obs) + offset)
    model = models["fresh"]
    if raises:
        with pytest.raises(RuntimeError, match=r"differs from model.predict by .* \(> 0.0005\)"):
            model.export_policy(tmp_path / "policy.onnx")
    else:
        model.export_policy(tmp_path / "policy.onnx")


def test_nan_never_passes_the_check(tmp_path, models, monkeypatch):
    from sb3_ofexi.common import export

    real = export.run_exported

    def one_nan(path, obs):
        actions = real(path, obs)
        actions[5, 1] = np.nan
        return actions

    monkeypatch.setattr(export, "run_exported", one_nan)
    with pytest.raises(RuntimeError, match=r"policy.pt returns NaN or inf for finite observations"):
        models["fresh"].export_policy(tmp_path / "policy.pt")


def _random_statistics(norm: nn.Module, generator: th.Generator) -> None:
    with th.no_grad():
        for name, tensor in [*norm.named_parameters(), *norm.named_buffers()]:
            if name in ("running_var", "ra_var"):
                tensor.copy_(th.rand(tensor.shape, generator=generator) * 2 + 0.1)
            elif tensor.is_floating_point():
                tensor.copy_(th.randn(tensor.shape, generator=generator))


@pytest.mark.parametrize("affine", [True, False])
def test_normalisations_before_a_linear_are_folded(affine):
    """BatchNorm1d (evaluation statistics) and BatchRenorm in front of a Linear, across two parts;
    one that feeds no Linear, and a BatchNorm1d without running statistics, are kept."""
    BatchRenorm1d = pytest.importorskip("sb3_contrib.common.torch_layers").BatchRenorm1d
    generator = th.Generator().manual_seed(0)
    first = nn.Sequential(nn.BatchNorm1d(5, affine=affine), nn.Linear(5, 8), nn.ReLU(), BatchRenorm1d(8, affine=affine))
    second = nn.Sequential(nn.Linear(8, 3), nn.BatchNorm1d(3, track_running_stats=False), nn.Tanh(), nn.BatchNorm1d(3))
    for module in [*first, *second]:
        _random_statistics(module, generator)
    first.eval()
    second.eval()
    folded = _fold_norms(first, second)
    assert [type(m) for m in folded[0]] == [nn.Linear, nn.ReLU]
    assert [type(m) for m in folded[1]] == [nn.Linear, nn.BatchNorm1d, nn.Tanh, nn.BatchNorm1d]
    x = th.randn(64, 5, generator=generator) * 3
    with th.no_grad():
        np.testing.assert_allclose(second(first(x)), folded[1].eval()(folded[0](x)), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def crossq():
    """sb3-contrib's CrossQ: BatchRenorm in front of each actor Linear, running statistics moved by training."""
    CrossQ = pytest.importorskip("sb3_contrib").CrossQ
    model = CrossQ(
        "MlpPolicy",
        "Pendulum-v1",
        learning_starts=64,
        batch_size=32,
        policy_kwargs=dict(net_arch=[32, 32]),
        seed=0,
        device="cpu",
    )
    model.learn(300)
    norm = model.actor.latent_pi[0]
    assert not th.allclose(norm.ra_mean, th.zeros(3), atol=1e-2) and not th.allclose(norm.ra_var, th.ones(3), atol=1e-2)
    return model


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_crossq_batch_renorm_is_folded(tmp_path, crossq, suffix):
    path = tmp_path / f"policy{suffix}"
    deployed = export_policy(crossq, path)
    assert {type(m) for m in deployed.modules()} <= {type(deployed), nn.Sequential, nn.Linear, nn.ReLU}
    space = crossq.observation_space
    obs = np.random.default_rng(1).uniform(1.5 * space.low, 1.5 * space.high, (1000, 3)).astype(np.float32)
    expected, _ = crossq.predict(obs, deterministic=True)
    bound = float(np.abs(crossq.action_space.high).max())
    np.testing.assert_allclose(run_exported(path, obs), expected, atol=EXPORT_ATOL * bound, rtol=0)
    if suffix == ".onnx":  # BatchRenorm's (x - mean) / sqrt(var + eps) * scale + bias is gone from the graph
        import onnx

        ops = {node.op_type for node in onnx.load(str(path)).graph.node}
        assert not ops & {"Sub", "Div", "Sqrt", "BatchNormalization"}, ops
