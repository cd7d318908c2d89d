"""DeviceReplayBuffer: SB3's ReplayBuffer API, data on the model's device."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_ofexi import DeviceReplayBuffer, SAC_OFEXi
from tests.conftest import make_model

OBS = gym.spaces.Box(-10, 10, (3,), np.float32)
ACT = gym.spaces.Box(-1, 1, (2,), np.float32)


def _fill(buffer: ReplayBuffer, n: int, n_envs: int = 1) -> None:
    """Transition i of env e: obs = i + e/10 everywhere, next_obs = obs + 0.5, action = i/100,
    reward = i, done = i odd, truncated when i is a multiple of 3."""
    for i in range(n):
        base = np.array([[i + e / 10] * 3 for e in range(n_envs)], dtype=np.float32)
        infos = [{"TimeLimit.truncated": i % 3 == 0} for _ in range(n_envs)]
        buffer.add(
            base,
            base + 0.5,
            np.full((n_envs, 2), i / 100),
            np.full(n_envs, float(i)),
            np.full(n_envs, float(i % 2)),
            infos,
        )


@pytest.mark.parametrize("n_envs", [1, 3])
def test_samples_are_whole_transitions(n_envs):
    buffer = DeviceReplayBuffer(100 * n_envs, OBS, ACT, device="cpu", n_envs=n_envs)
    _fill(buffer, 40, n_envs)
    assert buffer.size() == 40 and buffer.pos == 40 and not buffer.full
    data = buffer.sample(256)
    i = data.rewards.flatten()
    assert set(i.tolist()) <= set(range(40)) and len(set(i.tolist())) > 20
    env = (data.observations[:, 0] - i) * 10
    th.testing.assert_close(data.observations, (i + env / 10).unsqueeze(1).expand(-1, 3))
    th.testing.assert_close(data.next_observations, data.observations + 0.5)
    th.testing.assert_close(data.actions, (i / 100).unsqueeze(1).expand(-1, 2))
    expected_done = ((i % 2 == 1) & (i % 3 != 0)).float()  # a truncation is not a termination
    th.testing.assert_close(data.dones.flatten(), expected_done)
    assert data.observations.device == th.device("cpu") and data.observations.dtype == th.float32


def test_wraps_around_like_sb3():
    buffer = DeviceReplayBuffer(10, OBS, ACT, device="cpu")
    _fill(buffer, 25)
    assert buffer.full and buffer.pos == 5 and buffer.size() == 10
    assert set(buffer.sample(500).rewards.flatten().tolist()) == set(range(15, 25))
    assert buffer.observations.shape == (10, 1, 3) and buffer.rewards.shape == (10, 1)


def test_same_minibatch_as_sb3_for_the_same_indices_with_vecnormalize():
    venv = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]))
    venv.reset()
    for _ in range(50):
        venv.step(np.array([venv.action_space.sample()]))  # moves the running statistics
    ours = DeviceReplayBuffer(100, OBS, ACT, device="cpu")
    sb3 = ReplayBuffer(100, OBS, ACT, device="cpu")
    for buffer in (ours, sb3):
        _fill(buffer, 30)
    venv.obs_rms.mean, venv.obs_rms.var = np.array([1.0, 2.0, 3.0]), np.array([4.0, 9.0, 16.0])
    inds = np.array([0, 4, 7, 29, 12])
    expected = sb3._get_samples(inds, env=venv)
    got = ours._get_samples(th.as_tensor(inds), th.zeros(5, dtype=th.long), env=venv)
    for a, b in zip(expected, got):
        th.testing.assert_close(b, a)


def test_trains_saves_and_loads_with_sac_ofexi(tmp_path):
    model = make_model(replay_buffer_class=DeviceReplayBuffer)
    model.learn(200)
    assert isinstance(model.replay_buffer, DeviceReplayBuffer) and model.replay_buffer.size() == 200
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    model.save(tmp_path / "model.zip")
    loaded = SAC_OFEXi.load(tmp_path / "model.zip", env=model.get_env(), device="cpu")  # not "auto" on a GPU machine
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    assert isinstance(loaded.replay_buffer, DeviceReplayBuffer)
    assert th.equal(loaded.replay_buffer.storage, model.replay_buffer.storage)
    assert loaded.replay_buffer.pos == model.replay_buffer.pos
    loaded.learn(50, reset_num_timesteps=False)
    assert loaded.replay_buffer.size() == 250


def test_default_buffer_is_sb3s_on_cpu_and_on_device_on_cuda():
    assert type(make_model().replay_buffer) is ReplayBuffer
    if th.cuda.is_available():
        assert type(make_model(device="cuda").replay_buffer) is DeviceReplayBuffer


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(optimize_memory_usage=True, handle_timeout_termination=False), "optimize_memory_usage"),
        (dict(observation_space=gym.spaces.Dict({"a": OBS})), "flat Box observation"),
        (dict(action_space=gym.spaces.Discrete(3)), "Box action"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    args = dict(buffer_size=10, observation_space=OBS, action_space=ACT, device="cpu")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        DeviceReplayBuffer(**args)


def test_empty_buffer_sample_raises():
    with pytest.raises(ValueError, match="empty"):
        DeviceReplayBuffer(10, OBS, ACT, device="cpu").sample(4)


@pytest.mark.skipif(not th.cuda.is_available(), reason="needs CUDA")
def test_cuda_buffer_samples_on_the_device_and_moves_with_the_model(tmp_path):
    model = make_model(device="cuda")
    assert isinstance(model.replay_buffer, DeviceReplayBuffer)
    model.learn(150)
    data = model.replay_buffer.sample(16)
    assert data.observations.device.type == "cuda" and data.rewards.device.type == "cuda"
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    model.save(tmp_path / "model.zip")
    on_cpu = SAC_OFEXi.load(tmp_path / "model.zip", env=model.get_env(), device="cpu")
    on_cpu.load_replay_buffer(tmp_path / "buffer.pkl")
    assert on_cpu.replay_buffer.storage.device.type == "cpu"
    assert th.equal(on_cpu.replay_buffer.storage, model.replay_buffer.storage.cpu())
    on_cpu.learn(50, reset_num_timesteps=False)
