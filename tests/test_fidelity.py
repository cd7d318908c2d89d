"""The paper's optimisation problem: theta-gradient convention, L_pred scale, schedule, critic targets."""

import io
import json
import pathlib
import zipfile

import numpy as np
import pytest
import torch as th

from sb3_ofexi import SAC_OFEXi
from sb3_ofexi.common.complexity import mlp_complexity, mlp_regulariser
from sb3_ofexi.common.ofenet import OFEXiNet
from sb3_ofexi.common.xi import xi_gates
from sb3_ofexi.sac_ofexi import losses

from .conftest import make_model, make_policy


def _norms(gates):
    return [float(g.theta.detach().sum()) for g in gates]


def _hand_eq_28_29(policy, rho):
    """Eqs. (28) and (29) written out, with the critics' first layers in (28)'s sum over X minus pi."""
    ofe = policy.ofe
    d_o, d_a, target = ofe.obs_dim, ofe.action_dim, ofe.target_dim
    n_o, n_oa = _norms(ofe.phi_o.gates), _norms(ofe.phi_oa.gates)
    L_o, L_oa = len(n_o), len(n_oa)
    n_pi = float(policy.actor.net.gates[0].theta.detach().sum())
    n_q = sum(float(q.gates[0].theta.detach().sum()) for q in policy.critic.q_networks)
    eq28 = [
        d_o + rho * target + sum(n_o[: l - 1]) + L_o - l + rho * L_oa + 3 + n_pi + rho * n_q for l in range(1, L_o + 1)
    ]  # (rho * target == rho * d_o when f_pred predicts all)
    eq29 = [rho * (d_o + target + d_a + sum(n_o) + sum(n_oa[: l - 1]) + L_oa - l + 3 + n_q) for l in range(1, L_oa + 1)]
    return eq28, eq29


@pytest.mark.parametrize("rho", [0.5, 1.0])
@pytest.mark.parametrize("units", [((5, 4), (4, 6)), ((5, 4, 3), (4, 6, 2))])
def test_paper_coefficients_are_eqs_28_and_29(rho, units):
    policy = make_policy(units_o=units[0], units_oa=units[1])
    coef_o, coef_oa = policy.ofe_complexity(rho).paper_coefficients()
    eq28, eq29 = _hand_eq_28_29(policy, rho)
    np.testing.assert_allclose([float(c) for c in coef_o], eq28, rtol=1e-6)
    np.testing.assert_allclose([float(c) for c in coef_oa], eq29, rtol=1e-6)
    # with f_pred predicting all d_o entries, rho * target is the paper's rho * d_o
    assert policy.ofe.target_dim == policy.ofe.obs_dim


@pytest.mark.parametrize("rho", [0.5, 1.0])
def test_paper_regulariser_is_c_ofe_up_to_the_constant(rho):
    """sum_l coef_l * n_l == C_OFE - C_OFE(all OFE norms 0): eq. (30)'s constant."""
    policy = make_policy()
    c = policy.ofe_complexity(rho)
    zero = type(c)  # noqa: F841 (readability)
    from sb3_ofexi.common.complexity import ofe_complexity

    ofe = policy.ofe
    at_zero = ofe_complexity(
        ofe.obs_dim,
        ofe.action_dim,
        ofe.target_dim,
        [0.0] * len(c.norms_o),
        [0.0] * len(c.norms_oa),
        c.first_pi,
        c.first_q,
        rho,
    )
    th.testing.assert_close(
        th.as_tensor(c.regulariser("paper")).double(),
        th.as_tensor(c.total - at_zero.total).double(),
        rtol=1e-6,
        atol=1e-4,
    )


def test_paper_gradient_is_the_coefficient_and_autograd_adds_the_cross_terms():
    rho = 0.5
    policy = make_policy()
    ofe = policy.ofe
    policy.ofe_complexity(rho).regulariser("paper").backward()
    eq28, eq29 = _hand_eq_28_29(policy, rho)
    paper_o = [g.theta.grad.clone() for g in ofe.phi_o.gates]
    paper_oa = [g.theta.grad.clone() for g in ofe.phi_oa.gates]
    for grad, coef in zip(paper_o + paper_oa, eq28 + eq29):
        th.testing.assert_close(grad, th.full_like(grad, coef))
    for gate in xi_gates(ofe):
        gate.theta.grad = None
    policy.ofe_complexity(rho).regulariser("autograd").backward()
    n_o, n_oa = _norms(ofe.phi_o.gates), _norms(ofe.phi_oa.gates)
    for l, gate in enumerate(ofe.phi_o.gates):
        cross = sum(n_o[l + 1 :]) + rho * sum(n_oa)
        th.testing.assert_close(gate.theta.grad, paper_o[l] + cross)
    for l, gate in enumerate(ofe.phi_oa.gates):
        th.testing.assert_close(gate.theta.grad, paper_oa[l] + rho * sum(n_oa[l + 1 :]))
    # the last block of phi_oa: no cross term left, both modes agree
    th.testing.assert_close(ofe.phi_oa.gates[-1].theta.grad, paper_oa[-1])


def test_paper_coefficients_are_eq_32_and_agree_with_autograd_on_the_last_layer():
    values, d_in, d_out = [3.5, 2.0, 4.0], 11.0, 2
    grads = {}
    for mode in ("paper", "autograd"):
        n = [th.tensor(v, requires_grad=True) for v in values]
        mlp_regulariser(d_in, n, d_out, mode).backward()
        grads[mode] = [x.grad.item() for x in n]
    assert grads["paper"] == [1 + d_in, 1 + values[0], d_out + 1 + values[1]]  # eq. (32)
    assert grads["autograd"][-1] == grads["paper"][-1]
    assert grads["autograd"][:-1] == [grads["paper"][0] + values[1], grads["paper"][1] + values[2]]
    # one hidden layer: first and last coincide
    n = [th.tensor(3.0, requires_grad=True)]
    mlp_regulariser(d_in, n, d_out, "paper").backward()
    assert n[0].grad.item() == 1 + d_in + d_out
    # value: C_x minus its constant (the output layer's biases)
    n = [th.tensor(v) for v in values]
    assert float(mlp_regulariser(d_in, n, d_out, "paper")) == pytest.approx(
        float(mlp_complexity(d_in, n, d_out)) - d_out
    )


def test_rl_nets_last_layer_gradients_agree_between_modes():
    policy = make_policy()
    d_z_o, d_z_oa = policy.feature_widths()
    for net, d_in in [(policy.actor.net, d_z_o), *[(q, d_z_oa) for q in policy.critic.q_networks]]:
        grads = {}
        for mode in ("paper", "autograd"):
            for gate in net.gates:
                gate.theta.grad = None
            net.regulariser(d_in, mode).backward()
            grads[mode] = [g.theta.grad.clone() for g in net.gates]
        th.testing.assert_close(grads["paper"][-1], grads["autograd"][-1])
        assert (grads["autograd"][0] > grads["paper"][0]).all()


def test_pred_loss_sum_is_target_dim_times_mean():
    th.manual_seed(0)
    ofe = OFEXiNet(5, 2, [4, 3], [3, 2])
    obs, act, nxt = th.randn(16, 5), th.randn(16, 2), th.randn(16, 5)
    ofe.train(False)
    th.testing.assert_close(ofe.pred_loss(obs, act, nxt, "sum"), 5 * ofe.pred_loss(obs, act, nxt, "mean"))
    partial = OFEXiNet(5, 2, [4, 3], [3, 2], target_dim=3).train(False)
    th.testing.assert_close(partial.pred_loss(obs, act, nxt, "sum"), 3 * partial.pred_loss(obs, act, nxt, "mean"))
    with pytest.raises(ValueError, match="reduction"):
        ofe.pred_loss(obs, act, nxt, "median")


def test_model_uses_its_pred_loss_and_regulariser():
    for pred_loss, regulariser in (("sum", "paper"), ("mean", "autograd")):
        model = make_model(pred_loss=pred_loss, regulariser=regulariser, xi_start=0.0, learning_starts=50)
        model.learn(150)
        assert model.config.pred_loss == pred_loss and model.config.regulariser == regulariser
        assert np.isfinite(model.logger.name_to_value["train/aux_loss"])


@pytest.mark.parametrize(
    ("xi_start", "xi_round", "start_step", "round_step"),
    [(100, 300, 100, 300), (0.25, 0.75, 100, 300), (100, 0.75, 100, 300), (0.25, 300, 100, 300)],
)
def test_int_and_float_schedules_fire_at_the_right_env_steps(xi_start, xi_round, start_step, round_step):
    from .test_sac_ofexi import _PhaseRecorder

    total = 400
    model = make_model(
        xi_start=xi_start, xi_round=xi_round, theta_lr=0.05, nu_actor=1e-2, prune_freq=0, learning_starts=50
    )
    assert model.schedule_steps(total) == (start_step, round_step)
    recorder = _PhaseRecorder()
    model.learn(total, callback=recorder)
    for step, phase, _ in recorder.rows:
        last_train = step - 1  # the callback sees the phase set by the train() call at step-1
        if last_train <= 50:
            continue
        expected = "frozen" if last_train < start_step else ("learning" if last_train < round_step else "rounded")
        assert phase == expected, (step, phase)


def test_absolute_xi_start_does_not_scale_with_the_budget():
    model = make_model(xi_start=200_000, xi_round=0.8)
    assert model.schedule_steps(1_000_000) == (200_000, 800_000)
    assert model.schedule_steps(2_000_000) == (200_000, 1_600_000)  # HalfCheetah: still 200k


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(xi_start=-1), "xi_start"),
        (dict(xi_start=1.5), "xi_start"),
        (dict(xi_start=2e5), "write the int 200000"),
        (dict(xi_round=True), "xi_round"),
        (dict(xi_start="0.2"), "xi_start"),
        (dict(xi_start=500, xi_round=400), "xi_start"),
        (dict(regulariser="exact"), "regulariser"),
        (dict(pred_loss="avg"), "pred_loss"),
        (dict(nu_rl_reference="paper"), "nu_rl_reference"),
    ],
)
def test_bad_schedule_or_mode_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_model(**kwargs)


def test_mixed_schedule_checked_against_the_budget():
    model = make_model(xi_start=300, xi_round=0.5, learning_starts=10)
    with pytest.raises(ValueError, match="must come before"):
        model.learn(400)  # round at 200 env steps, start at 300


def test_critic_targets_carry_the_critic_thetas():
    model = make_model(
        xi_start=0.0, xi_round=1.0, theta_lr=0.05, nu_critic=1e-2, prune_freq=0, learning_starts=50, tau=0.01
    )
    model.learn(200)
    for q, q_target in zip(model.critic.q_networks, model.critic_target.q_networks):
        for gate, gate_target in zip(q.gates, q_target.gates):
            assert not th.equal(gate.theta, th.ones_like(gate.theta)), "thetas learned"
            assert th.equal(gate.theta, gate_target.theta)
        # weights are still Polyak-averaged, not copied
        assert not th.equal(q.hidden[0].weight, q_target.hidden[0].weight)


def test_prune_with_stale_target_thetas_keeps_what_the_target_computes():
    """A target whose thetas lag its critic's: a prune first gives it its critic's thetas (what the
    next target update would do), then removes units; the target computes the same as with those thetas."""
    policy = make_policy()
    g = th.Generator().manual_seed(5)
    with th.no_grad():
        for q, q_target in zip(policy.critic.q_networks, policy.critic_target.q_networks):
            for gate, gate_target in zip(q.gates, q_target.gates):
                gate.theta.copy_(th.where(th.rand(gate.theta.shape, generator=g) < 0.4, 0.0, gate.theta))
                gate_target.theta.uniform_(0.3, 1.0, generator=g)  # stale, different
    z_oa = th.randn(32, policy.ofe.z_oa_dim)
    with th.no_grad():
        for q, q_target in zip(policy.critic.q_networks, policy.critic_target.q_networks):
            for gate, gate_target in zip(q.gates, q_target.gates):
                gate_target.theta.copy_(gate.theta)
        expected = [t.clone() for t in policy.critic_target(z_oa)]
        for q_target in policy.critic_target.q_networks:  # make them stale again
            for gate_target in q_target.gates:
                gate_target.theta.uniform_(0.3, 1.0, generator=g)
    surgery = policy.prune_(theta_tol=0.1)
    keep = surgery.feature_masks["z_oa"]
    with th.no_grad():
        got = policy.critic_target(z_oa[:, keep])
    assert policy.critic_target.q_networks[0].units != [6, 5], "units were removed"
    for a, b in zip(got, expected):
        th.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _strip_keys(path, keys, out):
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            payload = src.read(item.filename)
            if item.filename == "data":
                data = json.loads(payload)
                for key in keys:
                    data.pop(key, None)
                payload = json.dumps(data).encode()
            dst.writestr(item, payload)


def test_files_from_0_1_0_keep_the_settings_they_were_trained_with(tmp_path):
    """A 0.1.x file saved before regulariser / pred_loss / nu_rl_reference existed (simulated: the
    keys stripped from a 0.1.x file) keeps what it was trained with; one that has them keeps them."""
    data = pathlib.Path(__file__).parent / "data"
    _strip_keys(data / "sac_ofexi_v0.1.0.zip", ["regulariser", "pred_loss", "nu_rl_reference"], tmp_path / "old.zip")
    old = SAC_OFEXi.load(tmp_path / "old.zip", device="cpu")
    assert (old.config.regulariser, old.config.pred_loss, old.config.nu_rl_reference) == ("autograd", "mean", "sb3")
    later = SAC_OFEXi.load(data / "sac_ofexi_pre_redesign", device="cpu")  # SB3 appends .zip
    assert (later.config.regulariser, later.config.pred_loss, later.config.nu_rl_reference) == (
        "paper",
        "sum",
        "ofenet",
    )
    buffer = io.BytesIO((tmp_path / "old.zip").read_bytes())
    assert SAC_OFEXi.load(buffer, device="cpu").config.pred_loss == "mean"


def test_evaluation_every_10k_steps_or_t_over_20():
    from sb3_ofexi.harness.runs import EVAL_EPISODES, default_eval_freq

    assert default_eval_freq(1_000_000) == 10_000  # the paper: 100 evaluations, 21 in the last 20%
    assert default_eval_freq(2_000_000) == 10_000
    assert default_eval_freq(10_000) == 500
    assert default_eval_freq(10) == 1
    assert EVAL_EPISODES == 10


def test_shortened_paper_entry_keeps_the_schedule_proportions():
    from sb3_ofexi.harness.runs import load_hyperparams, scale_schedule

    hyperparams = load_hyperparams("prune-b", "Hopper-v5")
    assert hyperparams["xi_start"] == 200_000 and hyperparams["xi_round"] == 0.8
    assert hyperparams["learning_starts"] == 10_000
    scale_schedule(hyperparams, 100_000)
    # 190k of the entry's 990k gradient steps before the thetas learn -> 17,273 of 90,000
    assert hyperparams["xi_start"] == 10_000 + 17_273 and hyperparams["xi_round"] == 0.8
    assert "n_timesteps" not in hyperparams
    short = load_hyperparams("prune-b", "Hopper-v5")
    scale_schedule(short, 30_000)
    assert short["xi_start"] == 13_838  # after the first update at 10,000, never before it
    tiny = load_hyperparams("prune-b", "Hopper-v5")
    scale_schedule(tiny, 5_000)  # no gradient step at all: env steps, proportionally
    assert tiny["xi_start"] == 1_000
    full = load_hyperparams("prune-b", "HalfCheetah-v5")
    scale_schedule(full, 2_000_000)
    assert full["xi_start"] == 200_000  # the paper's budget: absolute, as in the paper


def test_results_page_states_each_tasks_own_moved_schedule():
    from sb3_ofexi.harness.report import _schedule_sentence

    assert "13,838 of 30,000" in _schedule_sentence("Hopper-v5", 30_000, None)
    assert "11,910 of 30,000" in _schedule_sentence("HalfCheetah-v5", 30_000, None)  # 2M entry: 9.5% in
    assert _schedule_sentence("Hopper-v5", 1_000_000, None) == ""  # the entry's own budget: nothing moved
    assert _schedule_sentence("Pendulum-v1", 30_000, None) == ""  # entry without an absolute xi_start


def test_paper_convention_counts_reproduce_table_4_for_hopper():
    """Table 4 (Hopper-v2, thousands): SAC 71/280, OFE 139/651 with train = ours - f_pred + V."""
    import math

    from stable_baselines3 import SAC

    from sb3_ofexi.harness.runs import paper_param_counts

    ofe = SAC_OFEXi("MlpPolicy", "Hopper-v5", preset="ofe", buffer_size=1, device="cpu")
    counts = ofe.paper_param_counts()
    assert (math.ceil(counts["deploy"] / 1e3), math.ceil(counts["train"] / 1e3)) == (139, 651)
    f_pred = sum(p.numel() for p in ofe.policy.ofe.f_pred.parameters())
    v_net = (203 + 1) * 256 + (256 + 1) * 256 + 256 + 1  # V on z_o (11 + 6 * 32) with 256, 256
    assert counts["train"] == ofe.param_counts()["train"] - f_pred + v_net
    sac = SAC("MlpPolicy", "Hopper-v5", buffer_size=1, device="cpu")
    counts = paper_param_counts(sac)
    assert (math.ceil(counts["deploy"] / 1e3), math.ceil(counts["train"] / 1e3)) == (71, 280)


def _rl_regulariser_parts(model):
    """(actor, critic) parts nu * C of eq. (34) in the losses the model descends."""
    th.manual_seed(0)
    obs = th.randn(8, model.ofe.obs_dim)
    actions = th.rand(8, model.ofe.action_dim) * 2 - 1
    policy, nu = model.policy, model.theta_control.nu
    z_o, next_z_o, z_oa, actions_pi, log_prob = losses.policy_forward(policy, obs, obs, actions)
    ent_coef = th.tensor(0.3)
    th.manual_seed(1)
    rewards, dones = th.ones(8, 1), th.zeros(8, 1)
    critic_loss, td_loss = losses.critic_loss(policy, next_z_o, z_oa, rewards, dones, 0.99, ent_coef, nu)
    actor_loss, sac_actor_loss = losses.actor_loss(policy, z_o, actions_pi, log_prob, ent_coef, nu)
    return float((actor_loss - sac_actor_loss).detach()), float((critic_loss - td_loss).detach())


def test_nu_rl_reference_weighs_table_2_against_the_ofenet_code_losses():
    """'ofenet' (the presets' default) applies nu_pi / 5 and nu_q / (2 * 5^2) to SB3's losses: the
    OFENet code's SAC scales rewards by 5 (Q and the TD error by 5) and descends each critic's MSE
    without SB3's 1/2; 'sb3' applies Table 2's values as given."""
    from sb3_ofexi.common.config import NU_RL_FACTORS, OFENET_REWARD_SCALE

    assert OFENET_REWARD_SCALE == 5.0
    assert NU_RL_FACTORS["ofenet"] == {"actor": 0.2, "critic": 0.02}
    parts, state = {}, None
    for reference in ("ofenet", "sb3"):
        model = make_model(preset="prune-b", nu_rl_reference=reference)
        if state is None:
            state = model.policy.state_dict()
        model.policy.load_state_dict(state)  # the same weights and thetas for both
        parts[reference] = _rl_regulariser_parts(model)
    actor, critic = parts["ofenet"]
    actor_sb3, critic_sb3 = parts["sb3"]
    assert actor_sb3 > 0 and critic_sb3 > 0
    assert actor == pytest.approx(0.2 * actor_sb3, rel=1e-5)
    assert critic == pytest.approx(0.02 * critic_sb3, rel=1e-5)
    assert make_model(preset="ofe").config.nu_rl_reference == "ofenet"  # every preset, for the same losses
