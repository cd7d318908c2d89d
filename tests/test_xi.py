"""The xi gate (SPEC section 3)."""

import torch as th

from sb3_ofexi.common.xi import XiGate


def test_training_forward_samples_one_mask_per_pass():
    gate = XiGate(64)
    gate.theta.data.fill_(0.5)
    gate.train()
    y = gate(th.ones(16, 64))
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    assert 0 < y[0].sum() < 64, "a Bernoulli(0.5) mask over 64 units is neither empty nor full"
    assert th.equal(y, y[0].expand_as(y)), "the whole minibatch shares one realisation of xi"
    masks = {tuple(gate(th.ones(1, 64))[0].tolist()) for _ in range(5)}
    assert len(masks) > 1, "each forward pass draws a new mask"


def test_eval_forward_scales_by_theta():
    gate = XiGate(3)
    gate.theta.data = th.tensor([0.0, 0.25, 1.0])
    gate.eval()
    x = th.randn(4, 3)
    assert th.allclose(gate(x), x * th.tensor([0.0, 0.25, 1.0]))


def test_ste_gradient_equals_dloss_dxi():
    gate = XiGate(5)
    gate.theta.data = th.tensor([0.3, 0.6, 0.9, 1.0, 0.0])
    gate.train()
    x, w = th.randn(8, 5), th.randn(8, 5)
    loss = (gate(x) * w).sum()
    loss.backward()
    # L = sum(x * xi * w): dL/dxi_k = sum_b x_bk w_bk, whatever xi was drawn (eq. 7)
    assert th.allclose(gate.theta.grad, (x * w).sum(0))


def test_projection_keeps_theta_in_unit_interval():
    gate = XiGate(4)
    gate.theta.data = th.tensor([-0.5, 0.5, 1.5, 1.0])
    gate.project_()
    assert th.equal(gate.theta.data, th.tensor([0.0, 0.5, 1.0, 1.0]))


def test_rounding_gives_zero_or_one():
    gate = XiGate(4)
    gate.theta.data = th.tensor([0.1, 0.49, 0.5, 0.9])
    gate.round_()
    assert th.equal(gate.theta.data, th.tensor([0.0, 0.0, 1.0, 1.0]))


def test_inactive_gate_is_identity_and_keeps_everything():
    gate = XiGate(3, active=False)
    gate.train()
    x = th.randn(2, 3)
    assert th.equal(gate(x), x)
    assert gate.keep_mask(0.1).all()
