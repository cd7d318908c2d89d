"""Expected complexity (eqs. 21-27, 31) against brute-force counts and the paper's eqs. (28), (29), (32)."""

import pytest
import torch as th

from sb3_ofexi.common.complexity import count_params, mlp_complexity

from .conftest import make_policy

RHO = 0.5


def _binary_thetas(policy, p_keep=0.6):
    g = th.Generator().manual_seed(3)
    with th.no_grad():
        for name, tensor in policy.named_parameters():
            if name.endswith("theta") and not name.startswith("critic_target"):
                tensor.copy_((th.rand(tensor.shape, generator=g) < p_keep).float())
    policy.critic_target.load_state_dict(policy.critic.state_dict())


def _first_layer_params(mlp) -> int:
    first = mlp.hidden[0] if len(mlp.hidden) else mlp.out
    return first.weight.numel() + first.bias.numel()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_complexity_equals_brute_force_count_of_pruned_network(seed):
    th.manual_seed(seed)
    policy = make_policy()
    _binary_thetas(policy)
    with th.no_grad():
        c = policy.ofe_complexity(RHO)
        d_z_o, d_z_oa = policy.feature_widths()
        c_actor = float(policy.actor.net.complexity(d_z_o))
        c_critics = [float(q.complexity(d_z_oa)) for q in policy.critic.q_networks]

    policy.prune_(theta_tol=0.5)  # physically remove every unit whose theta is 0

    ofe = policy.ofe
    assert float(c.c_o) == count_params(ofe.phi_o)  # eq. (21): W, b, BN scale/shift, V
    assert float(c.c_oa) == count_params(ofe.phi_oa)  # eq. (22)
    assert float(c.c_pred) == count_params(ofe.f_pred)  # eq. (23)
    assert float(c.c_pi_ofe) == _first_layer_params(policy.actor.net)  # eq. (24)-(25)
    assert [float(x) for x in c.c_q_ofe] == [_first_layer_params(q) for q in policy.critic.q_networks]  # (26)
    assert c_actor == count_params(policy.actor)  # eq. (31), D_o = 2 d_a (mean and log_std)
    assert c_critics == [count_params(q) for q in policy.critic.q_networks]
    counts = policy.param_counts()
    assert counts["deploy"] == float(c.c_o) + c_actor
    assert counts["train"] == float(c.c_o + c.c_oa + c.c_pred) + c_actor + sum(c_critics)


def _norms(gates):
    return [float(g.theta.detach().sum()) for g in gates]


def test_autograd_gradient_against_eq_28_and_29():
    """Autograd of C_OFE vs. the paper's log-gamma coefficients.

    Eqs. (28)/(29) are coefficients chosen so that Gamma = nu*C_OFE + const *as a value*:
    each product n_i * n_l is put into one of the two layers' coefficient (the later
    layer's). The gradient of C_OFE has it in both, so autograd exceeds the paper's
    coefficient by sum_{j>l} n_j (+ rho * sum n^oa for phi_o). Eq. (28) also leaves out
    rho * sum_q ||theta_1^q||, although (24) with (26) puts the critics' first layers into
    C_OFE through the width of z_oa. The two coincide for the last block when those terms
    vanish; see docs/COMPLEXITY.md.
    """
    policy = make_policy()
    ofe = policy.ofe
    c = policy.ofe_complexity(RHO).total
    c.backward()
    d_o, d_a = ofe.obs_dim, ofe.action_dim
    n_o, n_oa = _norms(ofe.phi_o.gates), _norms(ofe.phi_oa.gates)
    L_o, L_oa = len(n_o), len(n_oa)
    n_pi = float(policy.actor.net.gates[0].theta.detach().sum())
    n_q = sum(float(q.gates[0].theta.detach().sum()) for q in policy.critic.q_networks)

    for l in range(1, L_o + 1):  # eq. (28), X_o \ pi is empty (SB3's SAC has no V network)
        eq28 = (1 + RHO) * d_o + sum(n_o[: l - 1]) + L_o - l + RHO * L_oa + 3 + n_pi
        correction = sum(n_o[l:]) + RHO * sum(n_oa) + RHO * n_q
        grad = ofe.phi_o.gates[l - 1].theta.grad
        assert th.allclose(grad, th.full_like(grad, eq28 + correction), rtol=1e-5)
    for l in range(1, L_oa + 1):  # eq. (29)
        eq29 = RHO * (2 * d_o + d_a + sum(n_o) + sum(n_oa[: l - 1]) + L_oa - l + 3 + n_q)
        correction = RHO * sum(n_oa[l:])
        grad = ofe.phi_oa.gates[l - 1].theta.grad
        assert th.allclose(grad, th.full_like(grad, eq29 + correction), rtol=1e-5)


def test_autograd_coincides_with_eq_28_29_where_the_conventions_agree():
    """Last blocks, no phi_oa unit and no critic first-layer unit alive: no cross term is left."""
    policy = make_policy()
    ofe = policy.ofe
    with th.no_grad():
        for gate in ofe.phi_oa.gates:
            gate.theta.zero_()
        for q in policy.critic.q_networks:
            q.gates[0].theta.zero_()
    policy.ofe_complexity(RHO).total.backward()
    d_o, d_a = ofe.obs_dim, ofe.action_dim
    n_o = _norms(ofe.phi_o.gates)
    L_oa = len(ofe.phi_oa.gates)
    n_pi = float(policy.actor.net.gates[0].theta.detach().sum())
    eq28_last = (1 + RHO) * d_o + sum(n_o[:-1]) + 0 + RHO * L_oa + 3 + n_pi
    assert th.allclose(ofe.phi_o.gates[-1].theta.grad, th.tensor(eq28_last), rtol=1e-6)
    eq29_last = RHO * (2 * d_o + d_a + sum(n_o) + 0 + 0 + 3 + 0)
    assert th.allclose(ofe.phi_oa.gates[-1].theta.grad, th.tensor(eq29_last), rtol=1e-6)


def test_autograd_gradient_against_eq_32():
    """Eq. (32) for an RL network; the first layer differs by the cross term n_1 * n_2."""
    values = [3.5, 2.0, 4.0]
    n = [th.tensor(v, requires_grad=True) for v in values]
    d_in, d_out = 11.0, 2
    mlp_complexity(d_in, n, d_out).backward()
    grads = [x.grad.item() for x in n]
    assert grads[0] == (1 + d_in) + values[1]  # eq. (32): -log gamma_1 / nu = 1 + D_i, plus n_2
    assert grads[1] == (1 + values[0]) + values[2]  # eq. (32): 1 + ||theta_{l-1}||, plus n_3
    assert grads[2] == d_out + 1 + values[1]  # eq. (32), last layer: identical
