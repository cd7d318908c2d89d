"""What a user saved with an earlier release still loads (files in tests/data, written by 0.1.0's code
before the sb3-contrib layout moved SACOFEXiPolicy and DeviceReplayBuffer into subpackages)."""

from __future__ import annotations

import json
import pathlib

import numpy as np

from sb3_ofexi import DeviceReplayBuffer, SAC_OFEXi

DATA = pathlib.Path(__file__).parent / "data"


def test_model_and_buffer_saved_by_0_1_0_load_and_continue():
    expected = json.loads((DATA / "sac_ofexi_v0.1.0.json").read_text())
    model = SAC_OFEXi.load(DATA / "sac_ofexi_v0.1.0.zip", env="Pendulum-v1", device="cpu")
    assert model.param_counts() == expected["param_counts"]
    assert model.num_timesteps == expected["num_timesteps"]
    actions, _ = model.predict(np.asarray(expected["obs"], dtype=np.float32), deterministic=True)
    np.testing.assert_allclose(actions, np.asarray(expected["actions"]), atol=1e-6)

    model.load_replay_buffer(DATA / "sac_ofexi_v0.1.0_buffer.pkl")
    assert isinstance(model.replay_buffer, DeviceReplayBuffer)
    assert model.replay_buffer.size() == 300
    model.learn(64, reset_num_timesteps=False)
    assert model.num_timesteps == expected["num_timesteps"] + 64


def test_model_and_buffer_saved_mid_learning_before_the_redesign_load_and_continue():
    """A prune-b model saved while its thetas learn, with its diagnostics (tests/data/make_pre_redesign.py):
    it loads, acts as saved, and continues through the rounding."""
    expected = json.loads((DATA / "sac_ofexi_pre_redesign.json").read_text())
    model = SAC_OFEXi.load(DATA / "sac_ofexi_pre_redesign.zip", env="Pendulum-v1", device="cpu")
    assert model.param_counts() == expected["param_counts"] and model.unit_counts() == expected["unit_counts"]
    assert model.xi_phase == expected["xi_phase"] == "learning"
    assert len(model.theta_history) == expected["theta_history_rows"] and model.xi_record == expected["xi_record"]
    actions, _ = model.predict(np.asarray(expected["obs"], dtype=np.float32), deterministic=True)
    np.testing.assert_allclose(actions, np.asarray(expected["actions"]), atol=1e-6)

    model.load_replay_buffer(DATA / "sac_ofexi_pre_redesign_buffer.pkl")
    model.learn(400, reset_num_timesteps=False)
    assert model.xi_phase == "rounded" and "before_rounding" in model.xi_record
    assert len(model.theta_history) > expected["theta_history_rows"]
