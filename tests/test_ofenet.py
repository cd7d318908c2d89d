"""OFEXiNet (SPEC section 2) and its place in SAC_OFEXi's update."""

import numpy as np
import torch as th

from sb3_ofexi.common.ofenet import OFEXiNet
from sb3_ofexi.common.step import sample_flat

from .conftest import make_model


def test_output_widths():
    ofe = OFEXiNet(obs_dim=5, action_dim=2, units_o=[3, 4], units_oa=[6, 1, 2])
    assert ofe.z_o_dim == 5 + 3 + 4
    assert ofe.z_oa_dim == 5 + 3 + 4 + 2 + 6 + 1 + 2
    ofe.eval()
    z_o = ofe.features_o(th.randn(7, 5))
    z_oa = ofe.features_oa(z_o, th.randn(7, 2))
    assert z_o.shape == (7, ofe.z_o_dim) and z_oa.shape == (7, ofe.z_oa_dim)
    assert ofe(th.randn(7, 5), th.randn(7, 2)).shape == (7, 5)


def test_block_order_linear_bn_swish_xi_then_concat_v_input():
    ofe = OFEXiNet(obs_dim=3, action_dim=1, units_o=[4], units_oa=[])
    block = ofe.phi_o.blocks[0]
    with th.no_grad():
        block.v.copy_(th.tensor([0.5, 2.0, -1.0]))
        block.gate.theta.copy_(th.tensor([1.0, 0.5, 0.0, 0.25]))
        block.bn.running_mean.normal_()
        block.bn.running_var.uniform_(0.5, 2.0)
    ofe.eval()
    o = th.randn(6, 3)
    bn = block.bn
    pre = (o @ block.linear.weight.T + block.linear.bias - bn.running_mean) / th.sqrt(bn.running_var + bn.eps)
    h = th.nn.functional.silu(pre * bn.weight + bn.bias) * block.gate.theta
    assert th.allclose(ofe.features_o(o), th.cat([h, block.v * o], dim=1), atol=1e-6)


def test_target_dim_predicts_first_entries():
    ofe = OFEXiNet(obs_dim=5, action_dim=1, units_o=[2], units_oa=[2], target_dim=3)
    assert ofe.f_pred.out_features == 3
    loss = ofe.pred_loss(th.randn(8, 5), th.randn(8, 1), th.randn(8, 5))
    assert loss.ndim == 0


def _ofe_state(model):
    return {k: v.clone() for k, v in model.policy.ofe.state_dict().items()}


def test_rl_update_leaves_ofe_bit_identical_and_ofe_update_changes_it():
    model = make_model(xi_start=0.0, xi_round=1.0, theta_lr=0.05, nu_ofe=1e-3, ofe_pretrain_steps=0)
    model.learn(100)  # fills the buffer and runs some updates, with thetas learning
    assert model.xi_phase == "learning"
    before = _ofe_state(model)
    critic_before = [p.clone() for p in model.critic.parameters()]
    # an RL update alone: SAC_OFEXi.train with the OFE step switched off
    model._ofe_step = lambda obs, actions, next_obs: th.zeros(())
    model.train(gradient_steps=3, batch_size=32)
    after = _ofe_state(model)
    assert all(th.equal(before[k], after[k]) for k in before), "an RL loss changed an OFE weight, theta or BN stat"
    assert any(not th.equal(a, b) for a, b in zip(critic_before, model.critic.parameters()))
    del model._ofe_step  # back to the class method
    data, obs, next_obs = sample_flat(model.policy, model.replay_buffer, 32)
    model._ofe_step(obs, data.actions, next_obs)
    changed = _ofe_state(model)
    assert any(not th.equal(before[k], changed[k]) for k in before if k.endswith("weight"))
    assert any(not th.equal(before[k], changed[k]) for k in before if k.endswith("theta"))


def test_rl_features_come_from_ofenet_in_eval_mode():
    model = make_model(ofe_pretrain_steps=0)
    model.learn(80)
    modes = []
    bn = model.policy.ofe.phi_o.blocks[0].bn
    handle = bn.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    model.train(gradient_steps=2, batch_size=32)
    handle.remove()
    # per gradient step: the OFE update (train mode), then the RL features (eval mode)
    assert modes == [True, False, True, False]
    assert not model.policy.ofe.training
    # a single observation predicts (BatchNorm in train mode would reject a batch of one)
    action, _ = model.predict(np.zeros(3, dtype=np.float32), deterministic=True)
    assert action.shape == (1,)
