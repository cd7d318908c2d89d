"""TD3_OFEXi and TQC_OFEXi: the OFEXi algorithm on TD3 and TQC (learning, pruning, save/load,
surgery, export, budgets, the compiled step), TD3's and TQC's own losses kept, and bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from sb3_contrib import TQC
from stable_baselines3 import TD3
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise

from sb3_ofexi import SAC_OFEXi, TD3_OFEXi, TQC_OFEXi
from sb3_ofexi.common.config import NU_RL_FACTORS_BY_LOSSES, OFEXiConfig
from sb3_ofexi.common.export import run_exported
from sb3_ofexi.common.presets import get_preset
from sb3_ofexi.common.step import compiler_available
from sb3_ofexi.common.xi import xi_gates

ALGOS = (TD3_OFEXi, TQC_OFEXi)
SMALL = dict(ofe_layers=2, ofe_units=8, learning_starts=64, batch_size=32, seed=0, device="cpu")
# test-sized nu: units are pruned within a few hundred steps
AGGRESSIVE = dict(
    preset="prune-b",
    nu_ofe=1e-3,
    nu_actor=3e-2,
    nu_critic=3e-2,
    theta_lr=0.05,
    xi_start=0.2,
    xi_round=0.8,
    prune_freq=50,
    compile_step=False,
)


def make(algo: type, **kwargs):
    config = {**SMALL, **AGGRESSIVE, **kwargs}
    policy_kwargs = {"net_arch": [16, 16], **config.pop("policy_kwargs", {})}
    if algo is TQC_OFEXi:
        policy_kwargs.setdefault("n_quantiles", 5)
    else:
        config.setdefault("action_noise", NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)))
    return algo("MlpPolicy", "Pendulum-v1", policy_kwargs=policy_kwargs, **config)


def assert_every_network_pruned(start: dict, units: dict) -> None:
    """Each of phi_o, phi_oa, the actor and every critic lost units (not only the OFENet, whose nu
    no algorithm rescales)."""
    for net in ("phi_o", "phi_oa", "actor"):
        assert sum(units[net]) < sum(start[net]), (net, start[net], units[net])
    for critic, critic_start in zip(units["critic"], start["critic"], strict=True):
        assert sum(critic) < sum(critic_start), (start["critic"], units["critic"])


def observations(n: int = 64) -> np.ndarray:
    return np.random.default_rng(1).uniform(-1, 1, (n, 3)).astype(np.float32)


@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_learns_prunes_saves_loads_and_continues(algo, tmp_path):
    model = make(algo)
    before, start = model.param_counts(), model.unit_counts()
    model.learn(500)
    assert model.xi_phase == "rounded"
    after = model.param_counts()
    assert after["deploy"] < before["deploy"] and after["train"] < before["train"]
    assert_every_network_pruned(start, model.unit_counts())  # at the algorithm's own nu factors
    for gate in xi_gates(model.policy):  # rounded thetas are 1, the zeros were pruned
        assert bool((gate.theta == 1).all())
    model.save(tmp_path / "model.zip")
    loaded = algo.load(tmp_path / "model.zip", env="Pendulum-v1")
    obs = observations()
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    assert loaded.unit_counts() == model.unit_counts() and loaded.param_counts() == after
    loaded.learn(200, reset_num_timesteps=False)  # continues, at the pruned shapes
    assert loaded.num_timesteps == 700 and loaded.param_counts() == after


@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_surgery_keeps_the_function_and_slices_adam(algo):
    model = make(algo, xi_start=0.0, xi_round=1.0)
    model.learn(100)  # Adam has state for every parameter
    policy = model.policy
    with th.no_grad():  # units at theta 0 contribute nothing: removing them changes no output
        for gate in policy.xi_layers().values():
            gate.theta.fill_(1.0)
            gate.theta[::3] = 0.0
        for q_net, q_target in zip(policy.critic.q_networks, policy.critic_target.q_networks):
            for gate, target in zip(q_net.gates, q_target.gates):
                target.theta.copy_(gate.theta)
        if algo is TD3_OFEXi:
            for gate, target in zip(policy.actor.net.gates, policy.actor_target.net.gates):
                target.theta.copy_(gate.theta)
    policy.set_training_mode(False)
    obs = th.as_tensor(observations())
    actions = th.as_tensor(np.random.default_rng(2).uniform(-1, 1, (64, 1)).astype(np.float32))

    def outputs() -> list[th.Tensor]:
        with th.no_grad():
            z_o = policy.features_o(obs)
            z_oa = policy.ofe.features_oa(z_o, actions)
            outs = [policy.actor(z_o, True), *policy.critic(z_oa), *policy.critic_target(z_oa)]
            if algo is TD3_OFEXi:
                outs.append(policy.actor_target(z_o))
            return outs

    sizes = [
        p.numel() for optimizer in model._optimizers() for group in optimizer.param_groups for p in group["params"]
    ]
    with th.no_grad():  # Adam's moments made functions of their parameter: slicing must keep that
        for optimizer in model._optimizers():
            for group in optimizer.param_groups:
                for param in group["params"]:
                    optimizer.state[param]["exp_avg"].copy_(2 * param + 1)
                    optimizer.state[param]["exp_avg_sq"].copy_(param.abs() + 3)
    expected = outputs()
    assert model.prune()
    for a, b in zip(expected, outputs()):
        th.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    sliced = [p for optimizer in model._optimizers() for group in optimizer.param_groups for p in group["params"]]
    assert len(sliced) == len(sizes) and sum(p.numel() for p in sliced) < sum(sizes)
    for optimizer in model._optimizers():
        for group in optimizer.param_groups:
            for param in group["params"]:
                state = optimizer.state[param]
                assert th.equal(state["exp_avg"], 2 * param.detach() + 1)
                assert th.equal(state["exp_avg_sq"], param.detach().abs() + 3)
    if algo is TD3_OFEXi:  # the actor target lost the actor's units
        assert policy.actor_target.net.units == policy.actor.net.units


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_export_reproduces_predict(algo, suffix, tmp_path):
    model = make(algo)
    model.learn(300)
    path = tmp_path / f"policy{suffix}"
    module = model.export_policy(path)  # raises if it differs from predict
    obs = observations()
    expected = model.predict(obs, deterministic=True)[0]
    np.testing.assert_allclose(run_exported(path, obs), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(run_exported(path, obs[:1]), expected[:1], atol=1e-5, rtol=0)
    assert sum(p.numel() for p in module.parameters()) <= model.param_counts()["deploy"]


def test_tqc_with_gsde_learns_saves_loads_and_exports(tmp_path):
    """gSDE (sb3-contrib's TQC has it): the exploration matrices are resampled, the deterministic
    action is the mean's, and the export reproduces it."""
    model = make(TQC_OFEXi, use_sde=True, sde_sample_freq=4, policy_kwargs=dict(log_std_init=-2.0))
    start = model.unit_counts()
    model.learn(300)
    assert model.use_sde and model.actor.use_sde
    assert sum(model.unit_counts()["actor"]) < sum(start["actor"])
    obs = observations()
    model.save(tmp_path / "m.zip")
    loaded = TQC_OFEXi.load(tmp_path / "m.zip", device="cpu")
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    model.export_policy(tmp_path / "policy.onnx")
    np.testing.assert_allclose(
        run_exported(tmp_path / "policy.onnx", obs), model.predict(obs, deterministic=True)[0], atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_resume_with_the_replay_buffer_is_bit_identical(algo, tmp_path):
    """Saved while the thetas learn and after a prune, reloaded with its replay buffer: training on
    gives the same parameters bit for bit (TD3's actor target and delay counter, TQC's entropy
    coefficient and its optimizer included), as for SAC_OFEXi (tests/test_reliability.py)."""
    model = make(algo, xi_round=1.0)
    model.learn(250)
    assert model.xi_phase == "learning" and model.unit_counts() != make(algo).unit_counts()
    model.save(tmp_path / "m")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = algo.load(tmp_path / "m", env=make_vec_env("Pendulum-v1", n_envs=1), device="cpu")
    loaded.load_replay_buffer(tmp_path / "buffer")
    model.set_env(make_vec_env("Pendulum-v1", n_envs=1))
    states = []
    for m in (model, loaded):
        m.set_random_seed(7)
        m._last_obs = None  # both start from a reset seeded the same way
        m.learn(60, reset_num_timesteps=False)
        states.append({k: v.clone() for k, v in m.policy.state_dict().items()})
        if algo is TQC_OFEXi:
            states[-1]["log_ent_coef"] = m.log_ent_coef.detach().clone()
    a, b = states
    assert a.keys() == b.keys()
    assert all(th.equal(a[k], b[k]) for k in a), [k for k in a if not th.equal(a[k], b[k])]
    assert loaded._n_updates == model._n_updates


@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_deploy_and_train_budgets_are_met(algo):
    """Both budgets at once, with nu too small to prune on its own: the train count holds TD3's /
    TQC's own critics (TQC's quantile outputs)."""
    model = make(algo, nu_ofe=1e-6, nu_actor=1e-5, nu_critic=1e-5, deploy_budget=0.4, train_budget=0.5)
    start = model.param_counts()
    model.learn(400)
    budgets, end = model.theta_control.budgets(), model.param_counts()
    assert end["deploy"] <= budgets["deploy"] <= 0.4 * start["deploy"]
    assert end["train"] <= budgets["train"] <= 0.5 * start["train"]


@pytest.mark.skipif(not compiler_available("cpu")[0], reason="torch.compile unavailable here")
@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_compiled_step_computes_what_the_eager_step_computes(algo):
    models = []
    for compiled in (False, True):
        model = make(
            algo,
            compile_step=compiled,
            xi_start=0.3,
            xi_round=0.9,
            prune_freq=0,
            policy_kwargs=dict(optimizer_class=th.optim.SGD),  # see tests/test_compiled_step.py
        )
        model.learn(64)  # collection only
        model._ofe_pretrained, model._total_timesteps = True, 1000
        model.num_timesteps, model._current_progress_remaining = 500, 0.5  # thetas learning: nu terms on
        np.random.seed(0)
        th.manual_seed(0)
        model.train(3, model.batch_size)
        models.append(model)
    eager, fast = models
    assert fast.step_runner.compiled and not eager.step_runner.compiled and fast.xi_phase == "learning"
    for (name, a), b in zip(eager.policy.state_dict().items(), fast.policy.state_dict().values()):
        th.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")


def test_td3_losses_and_delay_are_td3s():
    model = make(TD3_OFEXi, preset="ofe", policy_delay=3, target_policy_noise=0.3, target_noise_clip=0.4)
    model.learn(64)
    model._ofe_pretrained, model._total_timesteps = True, 1000
    actor_before = [p.detach().clone() for p in model.actor.parameters()]
    target_before = [p.detach().clone() for p in model.actor_target.parameters()]
    model.train(2, 32)  # updates 1 and 2: no actor update, no target update (policy_delay 3)
    assert all(th.equal(a, b) for a, b in zip(actor_before, model.actor.parameters()))
    assert all(th.equal(a, b) for a, b in zip(target_before, model.actor_target.parameters()))
    model.train(1, 32)  # update 3
    assert not all(th.equal(a, b) for a, b in zip(actor_before, model.actor.parameters()))
    assert not all(th.equal(a, b) for a, b in zip(target_before, model.actor_target.parameters()))
    assert model._n_updates == 3


def test_td3_critic_loss_is_td3s_smoothed_clipped_double_q():
    """SB3's TD3.train target: the target actor's action plus N(0, noise) clipped to +-clip, the
    minimum of the target critics, each critic's MSE summed; a clip of 0 leaves no smoothing."""
    from sb3_ofexi.td3_ofexi.losses import critic_loss

    model = make(TD3_OFEXi, preset="ofe")
    policy = model.policy
    policy.set_training_mode(False)
    z_o, actions = th.randn(8, policy.ofe.z_o_dim), th.rand(8, 1) * 2 - 1
    z_oa = policy.ofe.features_oa(z_o, actions).detach()
    rewards, dones = th.randn(8, 1), (th.arange(8) % 3 == 0).float().reshape(8, 1)

    def expected(noise_clip: float) -> th.Tensor:
        with th.no_grad():
            noise = actions.clone().normal_(0, 0.3).clamp(-noise_clip, noise_clip)
            next_actions = (policy.actor_target(z_o) + noise).clamp(-1, 1)
            next_q = th.cat(policy.critic_target(policy.ofe.features_oa(z_o, next_actions)), dim=1)
            target = rewards + (1 - dones) * 0.99 * th.min(next_q, dim=1, keepdim=True)[0]
            return sum(th.nn.functional.mse_loss(q, target) for q in policy.critic(z_oa))

    losses = {}
    for clip in (0.4, 0.0):
        th.manual_seed(3)
        loss, td3_loss = critic_loss(policy, z_o, z_oa, actions, rewards, dones, 0.99, 0.3, clip, None)
        th.manual_seed(3)
        th.testing.assert_close(td3_loss, expected(clip))
        th.testing.assert_close(loss.detach(), td3_loss)
        losses[clip] = td3_loss
    assert not th.equal(losses[0.4], losses[0.0])  # the noise reached the target
    th.manual_seed(11)  # at clip 0 no draw matters
    th.testing.assert_close(
        critic_loss(policy, z_o, z_oa, actions, rewards, dones, 0.99, 0.3, 0.0, None)[1], losses[0.0]
    )


def test_tqc_critic_loss_drops_the_top_quantiles():
    from sb3_contrib.common.utils import quantile_huber_loss

    from sb3_ofexi.tqc_ofexi.losses import critic_loss

    model = make(TQC_OFEXi, preset="ofe", top_quantiles_to_drop_per_net=2)
    policy = model.policy
    policy.set_training_mode(False)
    z_o = th.randn(8, policy.ofe.z_o_dim)
    z_oa = policy.ofe.features_oa(z_o, th.rand(8, 1) * 2 - 1).detach()
    rewards, dones = th.randn(8, 1), th.zeros(8, 1)
    th.manual_seed(3)
    loss, tqc_loss = critic_loss(policy, z_o, z_oa, rewards, dones, 0.99, th.tensor(0.1), 2, None)
    th.manual_seed(3)  # the same draw of next actions, computed as sb3-contrib's TQC.train does
    with th.no_grad():
        next_actions, next_log_prob = policy.actor.action_log_prob(z_o)
        quantiles = th.stack(policy.critic_target(policy.ofe.features_oa(z_o, next_actions)), dim=1)
        kept, _ = th.sort(quantiles.reshape(8, -1))
        kept = kept[:, : 5 * 2 - 2 * 2] - 0.1 * next_log_prob.reshape(-1, 1)
        target = (rewards + 0.99 * kept).unsqueeze(1)
    expected = quantile_huber_loss(th.stack(policy.critic(z_oa), dim=1), target, sum_over_quantiles=False)
    th.testing.assert_close(tqc_loss, expected.detach())
    th.testing.assert_close(loss.detach(), expected.detach())


def test_nu_meets_each_algorithms_losses():
    """nu_rl_reference="ofenet": SAC's factors (1/5, 1/50); TD3's and TQC's carry the OFENet code's
    SAC conventions over (1/5, 1/25; 1/5, 1/10). "sb3" is nu as given."""
    factors = NU_RL_FACTORS_BY_LOSSES
    assert factors["td3"]["ofenet"] == {"actor": 0.2, "critic": pytest.approx(0.04)}
    assert factors["tqc"]["ofenet"] == {"actor": 0.2, "critic": 0.1}
    assert all(f["sb3"] == {"actor": 1.0, "critic": 1.0} for f in factors.values())
    assert make(TD3_OFEXi).config.rl_losses == "td3" and make(TQC_OFEXi).config.rl_losses == "tqc"
    assert make(TQC_OFEXi).theta_control.nu.nu_critic == pytest.approx(AGGRESSIVE["nu_critic"] / 10)
    assert make(TD3_OFEXi).theta_control.nu.nu_actor == pytest.approx(AGGRESSIVE["nu_actor"] / 5)
    assert make(TD3_OFEXi).theta_control.nu.nu_critic == pytest.approx(AGGRESSIVE["nu_critic"] / 25)
    with pytest.raises(ValueError, match="rl_losses='ppo' is invalid"):
        OFEXiConfig.build("prune-b", get_preset("prune-b"), rl_losses="ppo")


@pytest.mark.parametrize("algo", ALGOS, ids=lambda a: a.__name__)
def test_bad_input_names_the_problem(algo):
    with pytest.raises(ValueError, match=f"{algo.__name__} needs a continuous action space"):
        algo("MlpPolicy", "CartPole-v1")
    with pytest.raises(
        ValueError, match=rf"policy_kwargs\['features_extractor_class'\] is not supported by {algo.__name__}"
    ):
        make(algo, policy_kwargs=dict(features_extractor_class=th.nn.Flatten))
    # a key the stock class's policy takes (SB3's TD3Policy, sb3-contrib's TQCPolicy) and OFEXi cannot honour
    with pytest.raises(
        ValueError, match=r"policy_kwargs\['share_features_extractor'\] is not supported.*always shared"
    ):
        make(algo, policy_kwargs=dict(share_features_extractor=False))
    with pytest.raises(ValueError, match="policy='CnnPolicy' is not supported"):
        algo("CnnPolicy", "Pendulum-v1")
    with pytest.raises(ValueError, match=r"policy_kwargs\['n_critics'\]=0: accepted: an int >= 1"):
        make(algo, policy_kwargs=dict(n_critics=0))
    with pytest.raises(ValueError, match=r"policy_kwargs\['net_arch'\] has no 'qf' key: accepted"):
        make(algo, policy_kwargs=dict(net_arch=dict(pi=[8], vf=[8])))
    with pytest.raises(ValueError, match=r"policy_kwargs\['net_arch'\]=\[8, '8'\] for"):
        make(algo, policy_kwargs=dict(net_arch=[8, "8"]))
    if algo is TQC_OFEXi:
        with pytest.raises(ValueError, match="n_quantiles=0: accepted: an int >= 1"):
            make(algo, policy_kwargs=dict(n_quantiles=0))
    else:  # SB3's TD3 policy has no gSDE; neither has TD3_OFEXi
        with pytest.raises(ValueError, match=r"policy_kwargs\['log_std_init'\] is not supported"):
            make(algo, policy_kwargs=dict(log_std_init=-2.0))
        with pytest.raises(ValueError, match="use_sde: TD3 \\(and so TD3_OFEXi\\) has no gSDE"):
            make(algo, use_sde=True)
        with pytest.raises(ValueError, match="policy_delay=0: accepted: an int >= 1"):
            make(algo, policy_delay=0)


@pytest.mark.parametrize(("ours", "stock"), ((TD3_OFEXi, TD3), (TQC_OFEXi, TQC)), ids=("TD3", "TQC"))
def test_a_saved_model_is_refused_by_the_stock_class(ours, stock, tmp_path):
    make(ours).save(tmp_path / "model.zip")
    with pytest.raises(ValueError, match=f"This model is a {ours.__name__} model"):
        stock.load(tmp_path / "model.zip")
    for other in (SAC_OFEXi, TD3_OFEXi, TQC_OFEXi):  # another OFEXi algorithm refuses its policy
        if other is not ours:
            with pytest.raises(ValueError, match=f"is the policy of another OFEXi algorithm: {other.__name__} cannot"):
                other.load(tmp_path / "model.zip")


def test_gym_dict_observations_are_read_flat():
    env = gym.wrappers.TransformObservation(
        gym.make("Pendulum-v1"),
        lambda o: {"x": o[:2], "y": o[2:]},
        gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (2,), np.float32), "y": gym.spaces.Box(-8, 8, (1,), np.float32)}),
    )
    model = TQC_OFEXi("MultiInputPolicy", env, **SMALL, policy_kwargs=dict(net_arch=[16, 16], n_quantiles=3))
    model.learn(100)
    assert model.policy.ofe.obs_dim == 3


def test_compare_runs_tqc_and_crossq_and_writes_their_summaries(tmp_path):
    import json

    from sb3_ofexi.harness.cli import main as cli_main

    out = tmp_path / "Pendulum-v1"
    args = ["compare", "--env", "Pendulum-v1", "--methods", "tqc,crossq", "--seeds", "1", "--timesteps", "200"]
    args += ["--eval-freq", "100", "--eval-episodes", "1", "--threads", "1", "--out", str(out)]
    assert cli_main(args) == 0
    numbers = json.loads((out / "report.json").read_text())["methods"]
    for method, algo in (("tqc", "TQC"), ("crossq", "CrossQ")):
        summary = json.loads((out / method / "seed0" / "summary.json").read_text())
        assert summary["algo"] == algo and summary["timesteps"] == 200 and summary["units"] is None
        assert summary["params"]["deploy"] < summary["params"]["train"]
        assert numbers[method]["deploy_latency_ms"] > 0  # the stock policy exported and timed


def test_compare_runs_the_ofexi_methods_of_td3_and_tqc(tmp_path):
    import json

    from sb3_ofexi.harness.cli import main as cli_main

    out = tmp_path / "Pendulum-v1"
    methods = "td3-ofe,tqc-ofe,td3-prune-b,tqc-prune-b"
    args = ["compare", "--env", "Pendulum-v1", "--methods", methods, "--seeds", "1", "--timesteps", "200"]
    args += ["--eval-freq", "100", "--eval-episodes", "1", "--threads", "1", "--no-speed", "--out", str(out)]
    assert cli_main(args) == 0
    for method in methods.split(","):
        summary = json.loads((out / method / "seed0" / "summary.json").read_text())
        assert summary["algo"] == ("TD3_OFEXi" if method.startswith("td3") else "TQC_OFEXi")
        assert summary["timesteps"] == 200
        assert summary["units"]["phi_o"] and summary["params"]["deploy"] < summary["params"]["train"]
        # prune-b's schedule (the entry's, moved into these 200 steps) is recorded; OFE's thetas never learn
        assert (summary["xi_record"] is not None) == method.endswith("prune-b"), (method, summary["xi_record"])


needs_cuda = pytest.mark.skipif(not th.cuda.is_available(), reason="needs CUDA")


@needs_cuda
@pytest.mark.parametrize(
    ("algo", "extra", "graphed"),
    ((TD3_OFEXi, dict(policy_delay=1), True), (TD3_OFEXi, dict(policy_delay=2), False), (TQC_OFEXi, {}, True)),
    ids=("TD3-delay1", "TD3-delay2", "TQC"),
)
def test_learns_and_prunes_on_cuda(algo, extra, graphed, tmp_path):
    """On CUDA the step is one CUDA graph ("auto"), except TD3's with delayed actor updates; pruning
    happens on the device; the saved model predicts the same on the CPU."""
    model = make(algo, device="cuda", compile_step="auto", **extra)
    start = model.unit_counts()
    model.learn(500)
    assert model.xi_phase == "rounded" and model.step_runner.graphed is graphed
    assert_every_network_pruned(start, model.unit_counts())
    assert all(p.device.type == "cuda" for p in model.policy.parameters())
    model.save(tmp_path / "model.zip")
    on_cpu = algo.load(tmp_path / "model.zip", device="cpu")
    obs = observations()
    np.testing.assert_allclose(
        on_cpu.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0], atol=1e-5
    )


class _ReplayedGraph:
    """Stands in for a CUDA graph on the CPU: calls the body the step runner built, as a replay would."""

    baked_lrs: tuple = ()

    def __init__(self, body, optimizers, device, signature) -> None:
        self.body, self.signature = body, signature

    def fits(self, batch) -> bool:
        return True

    def float_lrs(self) -> tuple:
        return ()

    def __call__(self, inputs):
        return self.body(inputs)


@pytest.mark.parametrize("algo", (*ALGOS, SAC_OFEXi), ids=lambda a: a.__name__)
def test_the_graphed_body_calls_each_algorithms_step(algo, monkeypatch):
    """The CUDA-graph path (run on the CPU with a stand-in graph): the runner hands every algorithm's
    step its flag (TD3's update_actor, SAC's and TQC's update_target)."""
    from sb3_ofexi.common import step as step_module
    from sb3_ofexi.common.step import sample_step_batch

    monkeypatch.setattr(step_module, "GraphedStep", _ReplayedGraph)
    if algo is SAC_OFEXi:
        model = SAC_OFEXi("MlpPolicy", "Pendulum-v1", **SMALL, **AGGRESSIVE, policy_kwargs=dict(net_arch=[16, 16]))
    else:
        model = make(algo, **({"policy_delay": 1} if algo is TD3_OFEXi else {}))
    model.learn(100)
    runner = model.step_runner
    runner.graphed, runner.signature = True, ("graphed",)
    actor_before = [p.detach().clone() for p in model.actor.parameters()]
    batch = sample_step_batch(model.policy, model.replay_buffer, 32)
    stats = runner.run(model._gradient_step, batch, True, True)
    assert {"aux_loss", "critic_loss", "actor_loss"} <= set(stats)
    assert not all(th.equal(a, b) for a, b in zip(actor_before, model.actor.parameters()))


def test_td3_theta_diagnostics_count_actor_gradients_only_on_its_updates():
    from sb3_ofexi.common.diagnostics import ThetaDiagnostics

    model = make(TD3_OFEXi, policy_delay=3, theta_diagnostics_freq=100, xi_start=0.0, xi_round=1.0)
    calls: list[tuple] = []
    original = ThetaDiagnostics.accumulate

    def spy(self, skip=()):
        calls.append(skip)
        original(self, skip)

    ThetaDiagnostics.accumulate = spy
    try:
        model.learn(160)
    finally:
        ThetaDiagnostics.accumulate = original
    assert calls and ("actor",) in calls and () in calls  # the actor skipped between its updates
    rows = [row for row in model.theta_history if row["layer"].startswith("actor")]
    assert rows and all(np.isfinite(row["task_grad"]) for row in rows)


def test_bad_settings_beyond_sac_name_what_is_accepted():
    with pytest.raises(
        ValueError, match=r"top_quantiles_to_drop_per_net=5 with n_quantiles=5: accepted: an int in \[0, 4\]"
    ):
        make(TQC_OFEXi, top_quantiles_to_drop_per_net=5)
    unbounded = gym.wrappers.RescaleAction(gym.make("Pendulum-v1"), np.float32(-1.0), np.float32(1.0))
    unbounded.action_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    with pytest.raises(ValueError, match="accepted: a Box with finite low and high"):
        TD3_OFEXi("MlpPolicy", unbounded)


@needs_cuda
def test_td3_with_delayed_actor_updates_refuses_compile_step_true_on_cuda():
    with pytest.raises(ValueError, match="compile_step=True on CUDA with policy_delay=2"):
        make(TD3_OFEXi, device="cuda", compile_step=True, policy_delay=2)
