"""Dict observations (MultiInputPolicy) and HerReplayBuffer on a goal-conditioned env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.envs import BitFlippingEnv

from sb3_ofexi import SAC_OFEXi

SMALL = dict(
    ofe_layers=2,
    ofe_units=8,
    policy_kwargs=dict(net_arch=[16, 16]),
    learning_starts=64,
    batch_size=32,
    seed=0,
    device="cpu",
)
PRUNING = dict(xi_start=0.2, prune_freq=50, theta_lr=0.05, nu_actor=1e-2, nu_ofe=1e-3)


class DictPointEnv(gym.Env):
    """A point that moves towards a target: Box entries of different shapes."""

    def __init__(self) -> None:
        self.observation_space = spaces.Dict(
            {
                "position": spaces.Box(-5, 5, (2,), np.float32),
                "target": spaces.Box(-5, 5, (2,), np.float32),
                "velocity": spaces.Box(-1, 1, (1, 2), np.float32),
            }
        )
        self.action_space = spaces.Box(-1, 1, (2,), np.float32)
        self.steps = 0

    def _obs(self) -> dict[str, np.ndarray]:
        return {"position": self.position.copy(), "target": self.target.copy(), "velocity": self.velocity.copy()}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        self.target = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        self.velocity = np.zeros((1, 2), np.float32)
        self.steps = 0
        return self._obs(), {}

    def step(self, action):
        self.velocity = 0.5 * np.asarray(action, np.float32).reshape(1, 2)
        self.position = np.clip(self.position + self.velocity[0], -5, 5)
        self.steps += 1
        reward = -float(np.linalg.norm(self.position - self.target))
        return self._obs(), reward, False, self.steps >= 20, {}


def test_dict_observations_are_flattened_in_key_order_and_train_with_pruning(tmp_path):
    env = DictPointEnv()
    model = SAC_OFEXi("MultiInputPolicy", env, **SMALL, **PRUNING)
    obs, _ = env.reset(seed=1)
    tensors = {k: th.as_tensor(v)[None] for k, v in obs.items()}
    flat = model.policy.obs_to_features_input(tensors)
    np.testing.assert_array_equal(flat.numpy()[0], spaces.flatten(env.observation_space, obs))
    assert model.policy.ofe.obs_dim == 6
    model.learn(400)
    assert sum(model.unit_counts()["phi_o"]) < 16  # pruned while learning
    model.save(tmp_path / "m")
    loaded = SAC_OFEXi.load(tmp_path / "m", env=DictPointEnv(), device="cpu")
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    assert loaded.param_counts() == model.param_counts()


def test_her_replay_buffer_on_a_goal_conditioned_env(tmp_path):
    env = BitFlippingEnv(n_bits=4, continuous=True, max_steps=4)
    her = dict(
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=2, goal_selection_strategy="future"),
    )
    model = SAC_OFEXi("MultiInputPolicy", env, **SMALL, **PRUNING, **her)
    model.learn(400)
    assert isinstance(model.replay_buffer, HerReplayBuffer)
    assert (
        model.param_counts()["deploy"]
        < SAC_OFEXi("MultiInputPolicy", env, **SMALL, **PRUNING, **her).param_counts()["deploy"]
    )
    model.save(tmp_path / "her")
    model.save_replay_buffer(tmp_path / "her_buffer")
    loaded = SAC_OFEXi.load(tmp_path / "her", env=env, device="cpu")
    loaded.load_replay_buffer(tmp_path / "her_buffer")
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    loaded.learn(100, reset_num_timesteps=False)  # goals relabelled from the loaded buffer
    assert loaded.num_timesteps == 500


def test_image_entries_and_mlp_policy_on_dicts_are_refused():
    class ImageDictEnv(DictPointEnv):
        def __init__(self) -> None:
            super().__init__()
            self.observation_space = spaces.Dict({"camera": spaces.Box(0, 255, (8, 8, 3), np.uint8)})

    with pytest.raises(ValueError, match="entry 'camera'.*accepted"):
        SAC_OFEXi("MultiInputPolicy", ImageDictEnv(), **SMALL)
    with pytest.raises(ValueError, match="MultiInputPolicy"):
        SAC_OFEXi("MlpPolicy", DictPointEnv(), **SMALL)
