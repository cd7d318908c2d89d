"""SAC_OFEXi inside SB3: presets, theta schedule, save/load, construction errors."""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from sb3_ofexi import PRESETS, SAC_OFEXi
from sb3_ofexi.common.xi import xi_gates

from .conftest import make_model


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_learns_500_steps_with_each_preset(preset):
    model = make_model(preset=preset, learning_starts=100)
    counts_before = model.param_counts()
    model.learn(500)
    logged = model.logger.name_to_value
    for key in ("train/aux_loss", "train/critic_loss", "train/actor_loss", "xi/deploy_params", "xi/train_params"):
        assert key in logged and np.isfinite(logged[key]), key
    assert model._n_updates == 400
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    assert model.config.use_xi == preset.startswith("prune")
    counts = model.param_counts()
    assert 0 < counts["deploy"] < counts["train"]
    assert counts["train"] <= counts_before["train"]
    if not model.config.use_xi:
        assert counts == counts_before
        assert all(th.equal(g.theta, th.ones_like(g.theta)) for g in xi_gates(model.policy))


def test_keyword_arguments_override_the_preset():
    model = make_model(preset="prune-c", nu_actor=0.5, rho=0.25)
    assert model.config.nu_actor == 0.5 and model.config.rho == 0.25
    assert model.config.nu_critic == PRESETS["prune-c"]["nu_critic"]
    assert model.unit_counts()["phi_o"] == [8, 8]


def test_preset_sizes_follow_the_paper():
    model = SAC_OFEXi("MlpPolicy", "Pendulum-v1", preset="ofe-big", device="cpu")
    assert model.unit_counts() == {
        "phi_o": [128] * 6,
        "phi_oa": [128] * 6,
        "actor": [512, 512],
        "critic": [[512, 512], [512, 512]],
    }
    assert SAC_OFEXi("MlpPolicy", "Pendulum-v1", preset="ofe", device="cpu").unit_counts()["actor"] == [256, 256]


class _PhaseRecorder(BaseCallback):
    def __init__(self):
        super().__init__()
        self.rows = []

    def _on_step(self) -> bool:
        thetas = th.cat([g.theta.detach().flatten() for g in xi_gates(self.model.policy)])
        self.rows.append((self.num_timesteps, self.model.xi_phase, thetas.clone()))
        return True


def test_theta_schedule_fires_at_the_right_steps():
    total, start, end = 400, 0.25, 0.75
    model = make_model(xi_start=start, xi_round=end, theta_lr=0.05, nu_actor=1e-2, prune_freq=0, learning_starts=50)
    recorder = _PhaseRecorder()
    model.learn(total, callback=recorder)
    for step, phase, thetas in recorder.rows:
        last_train = step - 1  # the callback sees the phase set by the train() call after step-1
        if last_train <= 50:
            continue
        progress = last_train / total
        expected = "frozen" if progress < start else ("learning" if progress < end else "rounded")
        assert phase == expected, (step, phase)
        if phase == "frozen":
            assert th.equal(thetas, th.ones_like(thetas)), "theta moved while frozen"
        if phase == "rounded":
            assert set(thetas.unique().tolist()) <= {0.0, 1.0}
    learning = [t for _, p, t in recorder.rows if p == "learning"]
    assert not th.equal(learning[0], learning[-1]), "thetas learn between xi_start and xi_round"
    rounded = [t for _, p, t in recorder.rows if p == "rounded"]
    assert all(th.equal(rounded[0], t) for t in rounded), "rounded thetas stay frozen"


def test_save_load_identical_predictions(tmp_path):
    model = make_model(xi_start=0.0, theta_lr=0.05, nu_actor=1e-2)
    model.learn(300)
    path = tmp_path / "model.zip"
    model.save(path)
    loaded = SAC_OFEXi.load(path, device="cpu")
    obs = np.random.default_rng(0).uniform(-1, 1, (16, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    assert loaded.unit_counts() == model.unit_counts()
    assert loaded.param_counts() == model.param_counts()
    assert loaded.xi_phase == model.xi_phase and loaded._ofe_pretrained
    for key in ("nu_ofe", "nu_actor", "nu_critic", "rho", "theta_tol", "xi_start", "xi_round"):
        assert getattr(loaded.config, key) == getattr(model.config, key)


def test_param_counts_match_module_sizes():
    model = make_model()
    policy = model.policy

    def n(module):
        return sum(p.numel() for name, p in module.named_parameters() if not name.endswith("theta"))

    assert model.param_counts() == {
        "deploy": n(policy.ofe.phi_o) + n(policy.actor),
        "train": n(policy.ofe.phi_o) + n(policy.ofe.phi_oa) + n(policy.ofe.f_pred) + n(policy.actor) + n(policy.critic),
    }


class _ImageObsEnv(gym.Env):
    observation_space = gym.spaces.Box(0, 1, (4, 4), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        return np.zeros((4, 4), np.float32), {}

    def step(self, action):
        return np.zeros((4, 4), np.float32), 0.0, False, False, {}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(env="CartPole-v1"), "continuous action space"),
        (dict(env=_ImageObsEnv()), "flat observation"),
        (dict(preset="prune-z"), "Unknown preset"),
        (dict(theta_tol=0.0), "theta_tol"),
        (dict(theta_tol=1.0), "theta_tol"),
        (dict(nu_ofe=-1e-3), "nu_ofe"),
        (dict(nu_critic=-1.0), "nu_critic"),
        (dict(lambda_rl=-1e-9), "lambda_rl"),
        (dict(lambda_ofe=-1.0), "lambda_ofe"),
        (dict(rho=1.5), "rho"),
        (dict(rho=-0.1), "rho"),
        (dict(xi_start=0.8, xi_round=0.8), "xi_start"),
        (dict(xi_start=0.9, xi_round=0.5), "xi_start"),
        (dict(use_sde=True, compile_step=True), "use_sde"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    config = dict(env="Pendulum-v1", device="cpu")
    config.update(kwargs)
    env = config.pop("env")
    with pytest.raises(ValueError, match=match):
        SAC_OFEXi("MlpPolicy", env, **config)


def test_l2_terms_are_weight_decay_on_w_and_v_only():
    model = make_model(preset="prune-b", lambda_ofe=1e-3, lambda_rl=2e-3)
    policy = model.policy
    for optimizer, module, lam in (
        (policy.ofe_optimizer, policy.ofe, 1e-3),
        (model.actor.optimizer, model.actor, 2e-3),
        (model.critic.optimizer, model.critic, 2e-3),
    ):
        decayed = [g for g in optimizer.param_groups if g["weight_decay"] > 0]
        assert len(decayed) == 1 and decayed[0]["weight_decay"] == lam
        expected = [m.weight for m in module.modules() if isinstance(m, th.nn.Linear)]
        expected += [m.v for m in module.modules() if hasattr(m, "v")]
        assert {id(p) for p in decayed[0]["params"]} == {id(p) for p in expected}
    assert all(g["weight_decay"] == 0 for g in policy.ofe_optimizer.param_groups if not g["decay"])


def test_adam_weight_decay_is_the_gradient_of_the_l2_term():
    """One Adam step with weight_decay=lam equals one step on loss + lam/2 ||W||^2 (eqs. 33/34)."""
    lam = 0.3
    w1 = th.nn.Parameter(th.randn(4, 3))
    w2 = th.nn.Parameter(w1.detach().clone())
    x = th.randn(5, 3)
    opt1, opt2 = th.optim.Adam([w1], lr=0.1, weight_decay=lam), th.optim.Adam([w2], lr=0.1)
    for _ in range(3):
        opt1.zero_grad()
        (x @ w1.T).pow(2).mean().backward()
        opt1.step()
        opt2.zero_grad()
        ((x @ w2.T).pow(2).mean() + 0.5 * lam * w2.pow(2).sum()).backward()
        opt2.step()
    th.testing.assert_close(w1, w2)


def test_get_and_set_parameters_round_trip_with_batchnorm_buffers():
    model = make_model(preset="prune-b", xi_start=0.1, theta_lr=0.05, nu_actor=1e-2, prune_freq=50)
    model.learn(300)
    params = copy.deepcopy(model.get_parameters())  # SB3's state dicts share storage with the model
    tracked = [k for k in params["policy"] if k.endswith("num_batches_tracked")]
    assert tracked and all(int(params["policy"][k]) > 0 for k in tracked)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    with th.no_grad():  # disturb every parameter and buffer, BN statistics included
        for value in model.policy.state_dict().values():
            value.add_(1) if value.is_floating_point() else value.add_(7)
    model.set_parameters(params, exact_match=True)
    after = model.policy.state_dict()
    assert all(th.equal(after[k], before[k]) for k in before)
