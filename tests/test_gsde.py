"""gSDE (use_sde=True) with pruning: log_std and the exploration matrices follow the actor's last layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th

from sb3_ofexi import SAC_OFEXi
from sb3_ofexi.common.export import run_exported

from .conftest import make_model

PRUNING = dict(xi_start=0.1, xi_round=1.0, theta_lr=0.05, nu_actor=1e-3, prune_freq=50)


@pytest.mark.parametrize("full_std", [True, False])
def test_gsde_learns_prunes_saves_loads_and_exports(tmp_path, full_std):
    model = make_model(
        use_sde=True, sde_sample_freq=4, policy_kwargs=dict(net_arch=[16, 16], full_std=full_std), **PRUNING
    )
    actor = model.actor
    assert actor.use_sde and actor.log_std.shape == (16, 1)
    model.learn(500)
    latent = actor.net.out.in_features
    assert latent < 16, "the actor's last layer was pruned"
    assert actor.log_std.shape == (latent, 1)
    assert actor.action_dist.exploration_mat.shape == (latent, 1)  # resampled over the remaining units
    assert model.policy_kwargs["net_arch"]["pi"][-1] == latent
    obs = np.random.default_rng(0).uniform(-1, 1, (5, 3)).astype(np.float32)
    expected = model.predict(obs, deterministic=True)[0]
    model.save(tmp_path / "sde")
    loaded = SAC_OFEXi.load(tmp_path / "sde", env="Pendulum-v1", device="cpu")
    assert loaded.use_sde and loaded.actor.log_std.shape == (latent, 1)
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], expected, atol=1e-6)
    th.manual_seed(1)
    loaded.policy.reset_noise(1)
    stochastic = [loaded.predict(obs[:1])[0] for _ in range(2)]
    np.testing.assert_allclose(*stochastic)  # gSDE: the same noise until it is resampled
    loaded.learn(100, reset_num_timesteps=False)
    model.export_policy(tmp_path / "sde.onnx")  # checked against predict inside (clip_mean included)
    np.testing.assert_allclose(run_exported(tmp_path / "sde.onnx", obs), expected, atol=1e-5)


def test_gsde_with_a_forced_compiled_step_is_refused():
    with pytest.raises(ValueError, match="compile_step=True with use_sde"):
        make_model(use_sde=True, compile_step=True)


def test_get_std_as_sb3s_actor():
    """gSDE users call SB3's ``model.actor.get_std()``: the std over the last hidden layer, exp(log_std)."""
    model = make_model(use_sde=True, policy_kwargs=dict(net_arch=[16, 16], log_std_init=-1.0))
    std = model.actor.get_std()
    assert std.shape == model.actor.log_std.shape
    th.testing.assert_close(std, th.exp(model.actor.log_std.detach()))
    with pytest.raises(RuntimeError, match="use_sde=True"):
        make_model().actor.get_std()
