"""Structural pruning (SPEC section 6): equivalence, shapes, optimizers, save/load, empty layers."""

import numpy as np
import pytest
import torch as th

from sb3_ofexi import PruningCallback, SAC_OFEXi
from sb3_ofexi.common.complexity import count_params
from sb3_ofexi.common.xi import xi_gates

from .conftest import make_model, make_policy

TOL = 0.1
DEVICES = ["cpu"] + (["cuda"] if th.cuda.is_available() else [])


def _force_some_thetas_to_zero(policy, fraction=0.4, seed=0):
    """Zero a random subset of units in every gated layer (critic targets mirror their critic)."""
    g = th.Generator().manual_seed(seed)
    with th.no_grad():
        for gate in [*xi_gates(policy.ofe), *xi_gates(policy.actor), *xi_gates(policy.critic)]:
            drop = th.rand(gate.n_units, generator=g) < fraction
            gate.theta[drop.to(gate.theta.device)] = 0.0
    policy.critic_target.load_state_dict(policy.critic.state_dict())


def _outputs(policy, obs, actions):
    ofe = policy.ofe
    with th.no_grad():
        z_o = ofe.features_o(obs)
        z_oa = ofe.features_oa(z_o, actions)
        return {
            "z_o": z_o,
            "z_oa": z_oa,
            "f_pred": ofe.f_pred(z_oa),
            "actor": th.cat(policy.actor.get_action_dist_params(z_o)[:2], dim=1),
            "critic": th.cat(policy.critic(z_oa), dim=1),
            "critic_target": th.cat(policy.critic_target(z_oa), dim=1),
        }


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", [0, 1])
def test_pruned_model_computes_what_the_masked_model_computed(device, seed):
    th.manual_seed(seed)
    policy = make_policy(device=device)
    _force_some_thetas_to_zero(policy, seed=seed)
    obs = th.randn(32, 4, device=device)
    actions = th.rand(32, 2, device=device) * 2 - 1
    before = _outputs(policy, obs, actions)
    surgery = policy.prune_(TOL)
    after = _outputs(policy, obs, actions)
    keep_z_o, keep_z_oa = surgery.feature_masks["z_o"], surgery.feature_masks["z_oa"]
    assert keep_z_o.device.type == device and not keep_z_o.all()
    th.testing.assert_close(after["z_o"], before["z_o"][:, keep_z_o], atol=1e-6, rtol=1e-6)
    th.testing.assert_close(after["z_oa"], before["z_oa"][:, keep_z_oa], atol=1e-6, rtol=1e-6)
    for key in ("f_pred", "actor", "critic", "critic_target"):
        th.testing.assert_close(after[key], before[key], atol=1e-6, rtol=1e-6)
    # everything stays on the model's device
    assert all(t.device.type == device for t in policy.state_dict().values())


def _check_shapes(policy):
    for block_net in (policy.ofe.phi_o, policy.ofe.phi_oa):
        width = block_net.in_features
        for block in block_net.blocks:
            units = block.gate.n_units
            assert block.v.shape == (width,)
            assert block.linear.weight.shape == (units, width) == (block.linear.out_features, block.linear.in_features)
            assert block.linear.bias.shape == (units,)
            for t in (block.bn.weight, block.bn.bias, block.bn.running_mean, block.bn.running_var):
                assert t.shape == (units,) and block.bn.num_features == units
            width += units
        assert width == block_net.out_features
    assert policy.ofe.phi_oa.in_features == policy.ofe.z_o_dim + policy.ofe.action_dim
    assert policy.ofe.f_pred.in_features == policy.ofe.z_oa_dim
    assert policy.actor.net.in_features == policy.ofe.z_o_dim
    for q_net, q_target in zip(policy.critic.q_networks, policy.critic_target.q_networks):
        assert q_net.in_features == policy.ofe.z_oa_dim
        layers = [*q_net.hidden, q_net.out]
        for i, gate in enumerate(q_net.gates):
            assert layers[i].out_features == gate.n_units == layers[i + 1].in_features
        assert {k: v.shape for k, v in q_net.state_dict().items()} == {
            k: v.shape for k, v in q_target.state_dict().items()
        }


def test_shapes_consistent_and_params_drop_by_the_predicted_amount():
    policy = make_policy()
    _force_some_thetas_to_zero(policy)
    alive = {id(g): int((g.theta >= TOL).sum()) for g in xi_gates(policy)}
    ofe = policy.ofe
    d_o, d_a = ofe.obs_dim, ofe.action_dim

    # SPEC section 7 prediction from the surviving unit counts alone
    def dense(d_in, units):
        total, width = 0, d_in
        for n in units:
            total += width * n + width + 3 * n  # W, v, bias + BN scale and shift
            width += n
        return total, width

    def mlp(d_in, units, d_out):
        total, width = 0, d_in
        for n in [*units, d_out]:
            total += width * n + n
            width = n
        return total

    units_o = [alive[id(g)] for g in ofe.phi_o.gates]
    units_oa = [alive[id(g)] for g in ofe.phi_oa.gates]
    phi_o, d_z_o = dense(d_o, units_o)
    phi_oa, d_z_oa = dense(d_z_o + d_a, units_oa)
    f_pred = (d_z_oa + 1) * ofe.target_dim
    actor = mlp(d_z_o, [alive[id(g)] for g in policy.actor.net.gates], 2 * d_a)
    critics = sum(mlp(d_z_oa, [alive[id(g)] for g in q.gates], 1) for q in policy.critic.q_networks)
    total_before = sum(p.numel() for p in policy.parameters())

    policy.prune_(TOL)
    _check_shapes(policy)
    counts = policy.param_counts()
    assert counts == {"deploy": phi_o + actor, "train": phi_o + phi_oa + f_pred + actor + critics}
    n_thetas = sum(g.n_units for g in xi_gates(policy))
    n_target = count_params(policy.critic_target)
    assert sum(p.numel() for p in policy.parameters()) == counts["train"] + n_target + n_thetas
    assert total_before > sum(p.numel() for p in policy.parameters())


def test_optimizer_moments_are_sliced_not_reset():
    model = make_model(xi_start=0.0, xi_round=1.0, theta_lr=0.05, prune_freq=0)
    model.learn(200)
    policy = model.policy
    block = policy.ofe.phi_o.blocks[0]
    q_first = policy.critic.q_networks[0].hidden[0]
    tracked = {
        "ofe_w": (policy.ofe_optimizer, block.linear.weight),
        "ofe_theta": (policy.ofe_optimizer, block.gate.theta),
        "critic_w": (policy.critic.optimizer, q_first.weight),
        "actor_w": (policy.actor.optimizer, policy.actor.net.hidden[1].weight),
    }
    old = {k: {s: v.clone() for s, v in opt.state[p].items()} for k, (opt, p) in tracked.items()}
    with th.no_grad():
        for gate in xi_gates(policy):
            gate.theta.fill_(1.0)
        block.gate.theta[[0, 3]] = 0.0
        policy.actor.net.gates[0].theta[[1, 2]] = 0.0
        policy.critic.q_networks[0].gates[0].theta[5] = 0.0
    keep_units = th.ones(8, dtype=th.bool)
    keep_units[[0, 3]] = False
    keep_actor = th.ones(16, dtype=th.bool)
    keep_actor[[1, 2]] = False
    keep_q = th.ones(16, dtype=th.bool)
    keep_q[5] = False
    surgery = policy.prune_(TOL)
    keep_z_oa = surgery.feature_masks["z_oa"]
    expected = {
        "ofe_w": lambda t: t[keep_units],
        "ofe_theta": lambda t: t[keep_units],
        "critic_w": lambda t: t[keep_q][:, keep_z_oa],
        "actor_w": lambda t: t[:, keep_actor],
    }
    for key, (opt, p) in tracked.items():
        state = opt.state[p]
        for name in ("exp_avg", "exp_avg_sq"):
            assert state[name].shape == p.shape
            assert th.equal(state[name], expected[key](old[key][name])), (key, name)
        assert th.equal(state["step"], old[key]["step"])
    model.train(gradient_steps=2, batch_size=32)  # a further gradient step runs on the new shapes
    assert all(th.isfinite(p).all() for p in policy.parameters())


def _strong_pruning_model(**kwargs):
    config = dict(
        xi_start=0.1,
        xi_round=0.9,
        theta_lr=0.05,
        nu_ofe=1e-2,
        nu_actor=1e-2,
        nu_critic=1e-2,
        prune_freq=50,
        learning_starts=64,
    )
    config.update(kwargs)
    return make_model(**config)


def test_pruning_during_learn_shrinks_the_policy():
    model = _strong_pruning_model()
    before = model.param_counts()
    callback = PruningCallback(verbose=0)
    model.learn(500, callback=callback)
    after = model.param_counts()
    assert callback.n_prunes >= 1
    assert after["deploy"] < before["deploy"] and after["train"] < before["train"]
    assert model.logger.name_to_value["xi/deploy_params"] == after["deploy"]
    assert model.policy_kwargs["net_arch"]["pi"] == model.unit_counts()["actor"]


def test_pruning_is_installed_by_default_and_can_be_disabled():
    on, off = _strong_pruning_model(), _strong_pruning_model(prune_freq=0, xi_round=1.0)
    on.learn(300)
    off.learn(300)
    assert sum(on.unit_counts()["phi_o"]) < 16
    assert off.unit_counts()["phi_o"] == [8, 8]


def test_save_load_of_pruned_model_and_continue(tmp_path):
    model = _strong_pruning_model(xi_round=1.0, nu_ofe=3e-3, nu_actor=3e-3, nu_critic=3e-3)
    model.learn(400)
    assert model.param_counts()["train"] < _strong_pruning_model().param_counts()["train"]
    model.save(tmp_path / "pruned")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = SAC_OFEXi.load(tmp_path / "pruned", env=model.get_env(), device="cpu")
    loaded.load_replay_buffer(tmp_path / "buffer")
    obs = np.random.default_rng(1).uniform(-1, 1, (8, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    assert loaded.unit_counts() == model.unit_counts()
    for opt_name in ("ofe_optimizer",):
        for p, state in getattr(loaded.policy, opt_name).state.items():
            assert state["exp_avg"].shape == p.shape
    loaded.learn(200, reset_num_timesteps=False)
    assert loaded.num_timesteps == 600


@pytest.mark.parametrize("device", DEVICES)
def test_empty_layers_train_predict_save_load(tmp_path, device):
    model = make_model(xi_start=0.0, xi_round=1.0, prune_freq=0, device=device)
    model.learn(100)
    with th.no_grad():
        model.policy.ofe.phi_o.blocks[0].gate.theta.zero_()
        model.policy.ofe.phi_oa.blocks[1].gate.theta.zero_()
        model.policy.actor.net.gates[1].theta.zero_()
        model.policy.critic.q_networks[0].gates[0].theta.zero_()
    assert model.prune()
    units = model.unit_counts()
    assert units["phi_o"][0] == 0 and units["phi_oa"][1] == 0 and units["actor"][1] == 0
    assert units["critic"][0][0] == 0
    model.learn(100, reset_num_timesteps=False)
    obs = np.zeros((4, 3), np.float32)
    action = model.predict(obs, deterministic=True)[0]
    model.save(tmp_path / "empty")
    loaded = SAC_OFEXi.load(tmp_path / "empty", env=model.get_env(), device=device)
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], action, atol=1e-6)
    loaded.learn(100, reset_num_timesteps=False)
