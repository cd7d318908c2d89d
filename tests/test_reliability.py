"""SAC_OFEXi in SB3 pipelines: save/load/resume at every phase, callbacks, vec envs, bad data."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

from sb3_ofexi import SAC_OFEXi

from .conftest import make_model

OBS = np.random.default_rng(5).uniform(-1, 1, (6, 3)).astype(np.float32)

# budgets of the first learn() call that end in each phase of the theta schedule
PHASES = {
    "frozen": dict(total=150, kwargs=dict(xi_start=0.9, xi_round=0.95)),
    "learning": dict(total=200, kwargs=dict(xi_start=0.2, xi_round=1.0)),
    "pruned": dict(total=300, kwargs=dict(xi_start=0.2, xi_round=1.0, prune_freq=50, nu_actor=1e-2, nu_ofe=1e-2)),
    "rounded": dict(total=200, kwargs=dict(xi_start=0.2, xi_round=0.6)),
}


def _phase_model(phase):
    spec = PHASES[phase]
    model = make_model(theta_lr=0.05, **spec["kwargs"])
    model.learn(spec["total"])
    return model


def _state(model):
    return {k: v.clone() for k, v in model.policy.state_dict().items()}


def _continue(model, steps=60, seed=7):
    model.set_random_seed(seed)
    model._last_obs = None  # start from a reset seeded the same way on both sides
    model.learn(steps, reset_num_timesteps=False)
    return _state(model)


@pytest.mark.parametrize("phase", list(PHASES))
def test_save_load_resume_is_identical_at_every_phase(tmp_path, phase):
    model = _phase_model(phase)
    if phase == "pruned":
        assert sum(model.unit_counts()["phi_o"]) < 16 or sum(model.unit_counts()["actor"]) < 32
    if phase == "rounded":
        assert model.xi_phase == "rounded"
    model.save(tmp_path / "m")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = SAC_OFEXi.load(tmp_path / "m", env=make_vec_env("Pendulum-v1", n_envs=1), device="cpu")
    np.testing.assert_array_equal(model.predict(OBS, deterministic=True)[0], loaded.predict(OBS, deterministic=True)[0])
    assert loaded.unit_counts() == model.unit_counts()

    # with the replay buffer: continued training is bit-identical
    loaded.load_replay_buffer(tmp_path / "buffer")
    model.set_env(make_vec_env("Pendulum-v1", n_envs=1))
    a, b = _continue(model), _continue(loaded)
    assert a.keys() == b.keys()
    assert all(th.equal(a[k], b[k]) for k in a), [k for k in a if not th.equal(a[k], b[k])]

    # without the replay buffer: loads, predicts the same, trains on
    fresh = SAC_OFEXi.load(tmp_path / "m", env=make_vec_env("Pendulum-v1", n_envs=1), device="cpu")
    assert fresh.replay_buffer.size() == 0
    fresh.learn(80, reset_num_timesteps=False)
    assert all(th.isfinite(p).all() for p in fresh.policy.parameters())


class _Snapshot(BaseCallback):
    """Units and deterministic actions at step ``at`` (when a checkpoint of that step is written)."""

    def __init__(self, at):
        super().__init__()
        self.at, self.units, self.actions = at, None, None

    def _on_step(self):
        if self.num_timesteps == self.at:
            self.units = self.model.unit_counts()
            self.actions = self.model.predict(OBS, deterministic=True)[0]
        return True


def test_checkpoint_and_eval_callbacks_during_pruning(tmp_path):
    model = make_model(xi_start=0.1, xi_round=1.0, theta_lr=0.05, nu_actor=1e-2, nu_ofe=1e-2, prune_freq=50)
    units_at_start = model.unit_counts()
    eval_env = make_vec_env("Pendulum-v1", n_envs=1, seed=1)
    snapshot = _Snapshot(at=300)
    callbacks = [
        CheckpointCallback(save_freq=100, save_path=str(tmp_path / "ckpt"), name_prefix="m"),
        EvalCallback(eval_env, eval_freq=100, n_eval_episodes=1, log_path=str(tmp_path / "eval"), verbose=0),
        snapshot,
    ]
    model.learn(400, callback=callbacks)
    assert snapshot.units != units_at_start, "the checkpoint is taken after a prune"
    loaded = SAC_OFEXi.load(tmp_path / "ckpt" / "m_300_steps.zip", device="cpu")
    assert loaded.unit_counts() == snapshot.units
    np.testing.assert_array_equal(loaded.predict(OBS, deterministic=True)[0], snapshot.actions)
    assert (tmp_path / "eval" / "evaluations.npz").exists()


@pytest.mark.parametrize("vec_env_cls", [DummyVecEnv, SubprocVecEnv])
def test_several_envs(vec_env_cls):
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0, vec_env_cls=vec_env_cls)
    try:
        model = make_model(env=env, xi_start=0.1, theta_lr=0.05, nu_actor=1e-2, prune_freq=40)
        model.learn(300)
        assert model.num_timesteps >= 300
        assert model.predict(OBS, deterministic=True)[0].shape == (6, 1)
    finally:
        env.close()


def test_vec_normalize(tmp_path):
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=1, seed=0))
    model = make_model(env=env, xi_start=0.1, theta_lr=0.05)
    model.learn(200)
    model.save(tmp_path / "m")
    env.save(str(tmp_path / "vecnormalize.pkl"))
    loaded_env = VecNormalize.load(str(tmp_path / "vecnormalize.pkl"), make_vec_env("Pendulum-v1", n_envs=1))
    loaded = SAC_OFEXi.load(tmp_path / "m", env=loaded_env, device="cpu")
    np.testing.assert_array_equal(model.predict(OBS, deterministic=True)[0], loaded.predict(OBS, deterministic=True)[0])
    loaded.learn(50, reset_num_timesteps=False)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(train_freq=4, gradient_steps=2),
        dict(train_freq=(1, "episode"), gradient_steps=-1),
        dict(train_freq=2, gradient_steps=3, target_update_interval=2),
        dict(learning_starts=0),
        dict(n_steps=3),
    ],
)
def test_train_freq_gradient_steps_and_learning_starts_variants(kwargs):
    model = make_model(xi_start=0.1, theta_lr=0.05, **kwargs)
    model.learn(300)
    assert model._n_updates > 0
    assert all(th.isfinite(p).all() for p in model.policy.parameters())


@pytest.mark.parametrize("pruned", [False, True])
def test_predict_single_and_batched(pruned):
    model = make_model(xi_start=0.1, xi_round=1.0, theta_lr=0.05, nu_actor=1e-2, nu_ofe=1e-2, prune_freq=50)
    model.learn(300 if pruned else 70)
    assert (model.param_counts() != make_model().param_counts()) == pruned
    for deterministic in (True, False):
        single, _ = model.predict(OBS[0], deterministic=deterministic)
        batch, _ = model.predict(OBS, deterministic=deterministic)
        assert single.shape == (1,) and batch.shape == (6, 1)
        assert np.all(np.abs(batch) <= 2.0)  # Pendulum's action bound, after SB3's rescaling
    det_single, _ = model.predict(OBS[0], deterministic=True)
    det_batch, _ = model.predict(OBS, deterministic=True)
    np.testing.assert_allclose(det_single, det_batch[0], atol=1e-6)


@pytest.mark.skipif(not th.cuda.is_available(), reason="needs CUDA")
def test_move_pruned_model_to_another_device(tmp_path):
    model = make_model(xi_start=0.1, xi_round=1.0, theta_lr=0.05, nu_actor=1e-2, nu_ofe=1e-2, prune_freq=50)
    model.learn(300)
    model.save(tmp_path / "m")
    on_gpu = SAC_OFEXi.load(tmp_path / "m", env=model.get_env(), device="cuda")
    np.testing.assert_allclose(
        model.predict(OBS, deterministic=True)[0], on_gpu.predict(OBS, deterministic=True)[0], atol=1e-5
    )
    on_gpu.learn(100, reset_num_timesteps=False)


def test_move_pruned_model_between_policies_on_cpu(tmp_path):
    """Loading into a fresh model on an explicit device keeps the pruned shapes (CPU everywhere)."""
    model = make_model(xi_start=0.1, xi_round=1.0, theta_lr=0.05, nu_actor=1e-2, nu_ofe=1e-2, prune_freq=50)
    model.learn(300)
    model.save(tmp_path / "m")
    loaded = SAC_OFEXi.load(tmp_path / "m", device=th.device("cpu"))
    assert all(p.device.type == "cpu" for p in loaded.policy.parameters())
    assert loaded.param_counts() == model.param_counts()


class _BadEnv(gym.Env):
    """Pendulum-like env that emits a NaN or inf in its observation or reward at step ``at``."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def __init__(self, where: str, value: float, at: int = 20):
        self.where, self.value, self.at, self.t = where, value, at, 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        obs = np.zeros(3, np.float32)
        if self.where == "reset":
            obs[1] = self.value
        return obs, {}

    def step(self, action):
        self.t += 1
        obs, reward = np.full(3, 0.1, np.float32), 0.0
        if self.t == self.at:
            if self.where == "obs":
                obs[2] = self.value
            elif self.where == "reward":
                reward = self.value
        return obs, reward, False, self.t >= 50, {}


@pytest.mark.parametrize(
    ("where", "value", "match"),
    [
        ("obs", np.nan, "NaN in the observation"),
        ("obs", np.inf, "inf in the observation"),
        ("reward", np.nan, "NaN in the reward"),
        ("reset", np.nan, "NaN in the observation"),
    ],
)
def test_nan_or_inf_from_the_env_is_refused_before_the_networks(where, value, match):
    model = make_model(env=_BadEnv(where, value), learning_starts=10)
    before = _state(model)
    with pytest.raises(ValueError, match=match):
        model.learn(100)
    assert all(th.isfinite(v).all() for v in model.policy.state_dict().values() if v.is_floating_point())
    if where == "reset":
        assert all(th.equal(before[k], v) for k, v in model.policy.state_dict().items())


def test_truncated_or_corrupted_file_gives_a_clear_error(tmp_path):
    model = make_model()
    model.save(tmp_path / "m")
    raw = (tmp_path / "m.zip").read_bytes()
    (tmp_path / "truncated.zip").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated, corrupted"):
        SAC_OFEXi.load(tmp_path / "truncated.zip")
    (tmp_path / "garbage.zip").write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="truncated, corrupted"):
        SAC_OFEXi.load(tmp_path / "garbage.zip")
    with pytest.raises(FileNotFoundError):
        SAC_OFEXi.load(tmp_path / "missing.zip")


def test_load_errors_that_are_not_file_problems_keep_their_own_message(tmp_path):
    model = make_model()
    model.save(tmp_path / "m")
    # an env id is accepted, as SB3's constructors accept one
    loaded = SAC_OFEXi.load(tmp_path / "m.zip", env="Pendulum-v1")
    assert loaded.get_env() is not None and loaded.observation_space == model.observation_space
    # a fine file with an env of other spaces: SB3's own message, not "corrupted"
    with pytest.raises(ValueError, match="Observation spaces do not match") as info:
        SAC_OFEXi.load(tmp_path / "m.zip", env="InvertedPendulum-v5")
    assert "corrupted" not in str(info.value)
    with pytest.raises(ValueError, match="not a registered Gymnasium id"):
        SAC_OFEXi.load(tmp_path / "m.zip", env="NoSuchEnv-v0")


def test_stock_sac_load_of_a_sac_ofexi_file_points_to_sac_ofexi(tmp_path):
    model = make_model(xi_start=0.1, xi_round=1.0, theta_lr=0.05, nu_actor=1e-2, prune_freq=50)
    model.learn(300)
    model.save(tmp_path / "pruned")
    with pytest.raises(ValueError, match="SAC_OFEXi.load"):
        SAC.load(tmp_path / "pruned")


class _Boom(BaseCallback):
    def __init__(self, at):
        super().__init__()
        self.at = at

    def _on_step(self):
        if self.num_timesteps == self.at:
            raise RuntimeError("interrupted")
        return True


def test_interrupted_learn_leaves_a_model_that_saves_loads_and_continues(tmp_path):
    model = make_model(xi_start=0.1, xi_round=1.0, theta_lr=0.05, nu_actor=1e-2, prune_freq=50)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.learn(400, callback=_Boom(at=250))
    model.save(tmp_path / "m")
    loaded = SAC_OFEXi.load(tmp_path / "m", env=model.get_env(), device="cpu")
    np.testing.assert_array_equal(model.predict(OBS, deterministic=True)[0], loaded.predict(OBS, deterministic=True)[0])
    loaded.learn(100, reset_num_timesteps=False)
    model.learn(100, reset_num_timesteps=False)


def test_two_cpu_runs_with_the_same_seed_are_identical():
    runs = []
    for _ in range(2):
        model = make_model(xi_start=0.1, theta_lr=0.05, nu_actor=1e-2, nu_ofe=1e-2, prune_freq=50, seed=3)
        model.learn(300)
        runs.append(_state(model))
    assert runs[0].keys() == runs[1].keys()
    assert all(th.equal(runs[0][k], runs[1][k]) for k in runs[0])


@pytest.mark.parametrize(
    "policy, policy_kwargs, match",
    [
        ("MlpPolicy", dict(features_extractor_class=th.nn.Flatten), "features_extractor_class.*phi_o is the feature"),
        ("MlpPolicy", dict(share_features_extractor=False), "share_features_extractor.*always shared"),
        ("MlpPolicy", dict(features_extractor_kwargs=dict(features_dim=8)), "features_extractor_kwargs"),
        ("MlpPolicy", dict(dropout=0.1), "dropout.*not an argument of SACOFEXiPolicy.*Accepted keys: net_arch"),
        ("CnnPolicy", None, "CnnPolicy.*image observations"),
        ("NoPolicy", None, "accepted: \\['MlpPolicy', 'MultiInputPolicy'\\]"),
    ],
)
def test_policy_and_policy_kwargs_sac_ofexi_does_not_take_give_a_value_error(policy, policy_kwargs, match):
    with pytest.raises(ValueError, match=match):
        SAC_OFEXi(policy, "Pendulum-v1", policy_kwargs=policy_kwargs)
