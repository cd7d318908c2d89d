from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th

from sb3_ofexi import SAC_OFEXi
from sb3_ofexi.sac_ofexi.policies import SACOFEXiPolicy

SMALL = dict(ofe_layers=2, ofe_units=8, policy_kwargs=dict(net_arch=[16, 16]))


@pytest.fixture(autouse=True)
def _seed():
    th.manual_seed(0)
    np.random.seed(0)
    th.set_num_threads(1)


def make_model(env: str = "Pendulum-v1", **kwargs) -> SAC_OFEXi:
    """A small SAC_OFEXi for fast tests (kwargs override)."""
    config = dict(SMALL, learning_starts=64, batch_size=32, seed=0, device="cpu")
    config.update(kwargs)
    return SAC_OFEXi("MlpPolicy", env, **config)


def make_policy(
    obs_dim: int = 4,
    action_dim: int = 2,
    units_o=(5, 4, 3),
    units_oa=(4, 6),
    pi=(7, 5),
    qf=((6, 5), (4, 3)),
    device: str = "cpu",
    **kwargs,
) -> SACOFEXiPolicy:
    """A policy with uneven widths, random weights, thetas and BN statistics."""
    obs_space = gym.spaces.Box(-1, 1, (obs_dim,), np.float32)
    act_space = gym.spaces.Box(-1, 1, (action_dim,), np.float32)
    policy = SACOFEXiPolicy(
        obs_space,
        act_space,
        lambda _: 1e-3,
        net_arch=dict(pi=list(pi), qf=[list(a) for a in qf]),
        ofe_units=dict(phi_o=list(units_o), phi_oa=list(units_oa)),
        **kwargs,
    ).to(device)
    with th.no_grad():
        for name, tensor in policy.state_dict().items():
            if name.endswith("theta"):
                tensor.uniform_(0.2, 1.0)
            elif name.endswith("running_mean") or name.endswith(".v"):
                tensor.normal_(0.0, 0.5)
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)
            elif name.endswith("bn.weight") or name.endswith("bn.bias"):
                tensor.normal_(0.0, 1.0)
    policy.critic_target.load_state_dict(policy.critic.state_dict())
    policy.set_training_mode(False)
    return policy
