"""Deployment export: phi_o + actor mean, deterministic, at the pruned shapes (Table 1).

The exported graph folds every evaluation-mode constant it can: BatchNorm into the
preceding Linear, the actor's thetas into its Linear rows (ReLU is positively
homogeneous), gates whose thetas are all 1 (every gate after rounding) disappear, and
the log-std rows of the actor's output layer are dropped.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import pathlib
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch as th
import torch.nn.functional as F
from torch import nn

from sb3_ofexi.surgery import make_linear

if TYPE_CHECKING:
    from sb3_ofexi.policies import SACOFEXiPolicy
    from sb3_ofexi.sac_ofexi import SAC_OFEXi

SUFFIXES = (".onnx", ".pt")


def _fold_bn(linear: nn.Linear, bn: nn.BatchNorm1d) -> nn.Linear:
    """Linear followed by BN in evaluation mode, as one Linear."""
    fused = copy.deepcopy(linear)
    scale = bn.weight / th.sqrt(bn.running_var + bn.eps)
    with th.no_grad():
        fused.weight.mul_(scale[:, None])
        fused.bias.copy_((linear.bias - bn.running_mean) * scale + bn.bias)
    return fused


def _theta_or_none(theta: th.Tensor, active: bool) -> th.Tensor | None:
    if not active or bool((theta == 1).all()):
        return None
    return theta.detach().clone()


class _DenseBlock(nn.Module):
    def __init__(self, linear: nn.Linear | None, theta: th.Tensor | None, v: th.Tensor) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("theta", theta)
        self.register_buffer("v", v.detach().clone())

    def forward(self, z: th.Tensor) -> th.Tensor:
        passthrough = self.v * z
        if self.linear is None:
            return passthrough
        h = F.silu(self.linear(z))
        if self.theta is not None:
            h = h * self.theta
        return th.cat([h, passthrough], dim=1)


class DeployedPolicy(nn.Module):
    """``obs -> action``: phi_o, the actor's mean, tanh and SB3's rescaling to the action bounds."""

    def __init__(self, policy: SACOFEXiPolicy) -> None:
        super().__init__()
        with th.no_grad():
            blocks = []
            for block in policy.ofe.phi_o.blocks:
                linear = _fold_bn(block.linear, block.bn).cpu() if block.units > 0 else None
                blocks.append(_DenseBlock(linear, _theta_or_none(block.gate.theta, block.gate.active), block.v.cpu()))
            self.phi_o = nn.Sequential(*blocks)
            net = policy.actor.net
            fold = isinstance(net.activation, nn.ReLU)
            hidden, thetas = [], []
            for linear, gate in zip(net.hidden, net.gates):
                linear = copy.deepcopy(linear).cpu()
                theta = _theta_or_none(gate.theta, gate.active)
                if theta is not None and fold:  # relu(x) * theta == relu(theta * x) for theta >= 0
                    linear.weight.mul_(theta.cpu()[:, None])
                    linear.bias.mul_(theta.cpu())
                    theta = None
                hidden.append(linear)
                thetas.append(theta)
            self.hidden = nn.ModuleList(hidden)
            self.thetas = [t.cpu() if t is not None else None for t in thetas]
            self.activation = copy.deepcopy(net.activation)
            action_dim = policy.actor.action_dim
            out = make_linear(net.out.in_features, action_dim)  # the mean rows only
            out.weight.copy_(net.out.weight[:action_dim])
            out.bias.copy_(net.out.bias[:action_dim])
            self.mean = out
            space = policy.action_space
            self.register_buffer("low", th.as_tensor(space.low, dtype=th.float32))  # type: ignore[attr-defined]
            self.register_buffer("high", th.as_tensor(space.high, dtype=th.float32))  # type: ignore[attr-defined]
        self.eval()

    def forward(self, obs: th.Tensor) -> th.Tensor:
        x = self.phi_o(obs)
        for linear, theta in zip(self.hidden, self.thetas):
            x = self.activation(linear(x))
            if theta is not None:
                x = x * theta
        action = th.tanh(self.mean(x))
        return self.low + 0.5 * (action + 1.0) * (self.high - self.low)


def export_policy(model: SAC_OFEXi, path: str | pathlib.Path, check: bool = True) -> DeployedPolicy:
    """Write the deployment policy to ``.onnx`` (checked with onnxruntime) or ``.pt`` (TorchScript).

    :param check: compare the file against ``model.predict(obs, deterministic=True)`` on a
        batch of observations and raise if they differ by more than 1e-5
    :return: the in-memory :class:`DeployedPolicy` that was exported
    """
    path = pathlib.Path(path)
    if path.suffix not in SUFFIXES:
        raise ValueError(f"Cannot export to {str(path)!r}: accepted suffixes are {', '.join(SUFFIXES)}")
    deployed = DeployedPolicy(model.policy)
    obs_dim = model.policy.ofe.obs_dim
    example = th.zeros(2, obs_dim)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_exporter():
        if path.suffix == ".onnx":
            batch = th.export.Dim("batch", min=1)
            program = th.onnx.export(
                deployed, (example,), input_names=["obs"], output_names=["action"],
                dynamic_shapes={"obs": {0: batch}}, dynamo=True, verbose=False,
            )  # fmt: skip
            program.save(str(path))
        else:
            th.jit.save(th.jit.trace(deployed, example), str(path))
    if check:
        obs = _sample_observations(model, 64)
        expected, _ = model.predict(obs, deterministic=True)
        got = run_exported(path, obs)
        error = float(np.abs(got - expected).max())
        if error > 1e-5:
            raise RuntimeError(f"The exported policy {path} differs from model.predict by {error:.3g} (> 1e-5)")
    return deployed


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporters warn about optional packages (torchvision) and deprecations we do not use."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def run_exported(path: str | pathlib.Path, obs: np.ndarray) -> np.ndarray:
    """Actions of an exported policy (``.onnx`` through onnxruntime, ``.pt`` through TorchScript)."""
    path = pathlib.Path(path)
    obs = np.asarray(obs, dtype=np.float32).reshape(-1, np.asarray(obs).shape[-1])
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {"obs": obs})[0]
    module = th.jit.load(str(path), map_location="cpu")
    with th.no_grad():
        return module(th.as_tensor(obs)).numpy()


def _sample_observations(model: SAC_OFEXi, n: int) -> np.ndarray:
    space = model.observation_space
    rng = np.random.default_rng(0)
    low = np.where(np.isfinite(space.low), space.low, -3.0)  # type: ignore[attr-defined]
    high = np.where(np.isfinite(space.high), space.high, 3.0)  # type: ignore[attr-defined]
    return rng.uniform(low, high, (n, *space.shape)).astype(np.float32)  # type: ignore[misc]
