"""The deployed policy as one folded module (phi_o + actor mean, deterministic, at the pruned shapes,
Table 1), for every algorithm the package trains or compares, and how an export is checked
against ``model.predict``: what every export format (:mod:`.export`: ONNX, TorchScript;
:mod:`.c_export`: C99) is written from.

Every evaluation-mode constant is folded into weights: BatchNorm into the preceding Linear, the
thetas and the diagonal V of the DenseNet into the columns of the Linear layers that read them,
and the log-std rows of the actor's output are dropped. What is left per block is Linear -> SiLU
-> concat; the actor is a plain MLP. A normalisation in front of a Linear (CrossQ's BatchRenorm,
a BatchNorm1d) is folded into that Linear's columns.
"""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.sac.policies import SACPolicy
from stable_baselines3.td3.policies import TD3Policy
from torch import nn

from sb3_ofexi.common.surgery import make_linear

#: the files of a C export (``NAME.h`` + ``NAME.c``)
C_SUFFIXES = (".c", ".h")


def _fold_bn(linear: nn.Linear, bn: nn.BatchNorm1d) -> nn.Linear:
    """Linear followed by BN in evaluation mode, as one Linear."""
    fused = copy.deepcopy(linear)
    assert bn.running_var is not None and bn.running_mean is not None  # BN tracks statistics here
    scale = bn.weight / th.sqrt(bn.running_var + bn.eps)
    with th.no_grad():
        fused.weight.mul_(scale[:, None])
        fused.bias.copy_((linear.bias - bn.running_mean) * scale + bn.bias)
    return fused


def _norm_affine(module: nn.Module) -> tuple[th.Tensor, th.Tensor] | None:
    """``(s, t)`` (float64) with ``module(x) == s * x + t`` in evaluation mode, for a BatchNorm1d
    with running statistics or sb3_contrib's BatchRenorm; ``None`` for any other module."""
    names: dict[type[nn.Module], tuple[str, ...]] = {nn.BatchNorm1d: ("running_mean", "running_var", "weight", "bias")}
    names.update({cls: ("ra_mean", "ra_var", "scale", "bias") for cls in _batch_renorm()})
    found = next((names[cls] for cls in names if isinstance(module, cls)), None)
    if found is None or getattr(module, found[0]) is None:  # a BatchNorm1d without running statistics
        return None
    mean, var = (getattr(module, name).detach().double() for name in found[:2])
    s = 1.0 / th.sqrt(var + float(module.eps))  # type: ignore[arg-type]
    if not module.affine:
        return s, -s * mean
    weight, bias = (getattr(module, name).detach().double() for name in found[2:])
    return s * weight, bias - s * weight * mean


def _batch_renorm() -> tuple[type[nn.Module], ...]:
    """sb3_contrib's BatchRenorm (CrossQ's), if sb3_contrib is installed."""
    try:
        from sb3_contrib.common.torch_layers import BatchRenorm
    except ImportError:
        return ()
    return (BatchRenorm,)


def _fold_norms(*parts: nn.Module) -> list[nn.Sequential]:
    """``parts`` (modules run one after the other) as flat ``Sequential`` s in which every
    normalisation that feeds a Linear (:func:`_norm_affine`) is folded into it, across the parts'
    boundaries: ``W' = W diag(s)``, ``b' = b + W t``. One that feeds anything else is kept."""
    out: list[list[nn.Module]] = [[] for _ in parts]
    pending: tuple[int, nn.Module, tuple[th.Tensor, th.Tensor]] | None = None

    def flatten(module: nn.Module) -> list[nn.Module]:
        return [m for child in module for m in flatten(child)] if isinstance(module, nn.Sequential) else [module]

    for n, module in [(n, m) for n, part in enumerate(parts) for m in flatten(part)]:
        affine = _norm_affine(module)
        if pending is not None and affine is None and isinstance(module, nn.Linear):
            s, t = pending[2]
            module = copy.deepcopy(module)
            with th.no_grad():
                weight = module.weight.detach().double()
                bias = module.bias.detach().double() if module.bias is not None else th.zeros(len(weight)).double()
                module.weight.copy_(weight * s[None, :])
                module.bias = nn.Parameter((bias + weight @ t).to(module.weight.dtype))
        elif pending is not None:
            out[pending[0]].append(pending[1])
        pending = (n, module, affine) if affine is not None else None
        if affine is None:
            out[n].append(module)
    if pending is not None:
        out[pending[0]].append(pending[1])
    return [nn.Sequential(*modules) for modules in out]


def _register_action_rescaling(module: nn.Module, space: spaces.Box) -> None:
    """SB3's unscale_action as two buffers: ``low + 0.5 * (a + 1) * (high - low) == a * half_range + center``."""
    low = th.as_tensor(space.low, dtype=th.float32)
    high = th.as_tensor(space.high, dtype=th.float32)
    module.register_buffer("half_range", 0.5 * (high - low))
    module.register_buffer("center", 0.5 * (high + low))


class DeployedPolicy(nn.Module):
    """``obs -> action``: phi_o, the actor's mean, tanh and SB3's rescaling to the action bounds.

    Every evaluation-mode constant is folded into weights. phi_o's output is
    ``z_L = s_L * r_L`` with raw features ``r_l = [silu(W'_l r_{l-1} + b'_l), r_{l-1}]`` and a
    per-feature scale ``s_l = [theta_l, v_l * s_{l-1}]`` (eq. 10), so the scales go into
    the columns of the next Linear: a block is Linear (BN folded) -> SiLU -> concat.
    """

    half_range: th.Tensor  # buffers of the action rescaling
    center: th.Tensor

    def __init__(self, policy: Any) -> None:  # an OFEXi policy: its ofe (OFEXiNet) and actor
        super().__init__()
        with th.no_grad():
            obs_dim = policy.ofe.obs_dim
            scale = th.ones(obs_dim)
            blocks = []
            for block in policy.ofe.phi_o.blocks:
                theta = block.gate.theta.detach().cpu() if block.gate.active else th.ones(block.units)
                if block.units > 0:
                    linear = _fold_bn(block.linear, block.bn).cpu()
                    linear.weight.mul_(scale[None, :])
                    blocks.append(linear)
                    scale = th.cat([theta, block.v.detach().cpu() * scale])
                else:
                    scale = block.v.detach().cpu() * scale
            self.blocks = nn.ModuleList(blocks)
            self.block_activation = nn.SiLU()  # XiDenseBlock's; a module, so the C exporter can read it

            net = policy.actor.net
            layers = [copy.deepcopy(layer).cpu() for layer in [*net.hidden, net.out]]
            layers[0].weight.mul_(scale[None, :])  # z_o's scale into the actor's first layer
            self.activation = copy.deepcopy(net.activation)
            for i, gate in enumerate(net.gates):
                if gate.active:  # x * theta feeds only the next layer: theta goes into its columns
                    layers[i + 1].weight.mul_(gate.theta.detach().cpu()[None, :])
            self.hidden = nn.ModuleList(layers[:-1])
            action_dim = policy.actor.action_dim
            out = make_linear(layers[-1].in_features, action_dim)  # the mean rows only
            out.weight.copy_(layers[-1].weight[:action_dim])
            out.bias.copy_(layers[-1].bias[:action_dim])
            self.mean = out
            actor = policy.actor
            # gSDE clips the mean before tanh (SB3's clip_mean); 0: no clipping
            self.clip_mean = float(actor.clip_mean) if getattr(actor, "use_sde", False) and actor.clip_mean > 0 else 0.0
            _register_action_rescaling(self, policy.action_space)  # type: ignore[arg-type]
        self.eval()

    def forward(self, obs: th.Tensor) -> th.Tensor:
        z = obs
        for linear in self.blocks:
            z = th.cat([self.block_activation(linear(z)), z], dim=1)
        x = z
        for linear in self.hidden:
            x = self.activation(linear(x))
        mean = self.mean(x)
        if self.clip_mean > 0:
            mean = th.clamp(mean, -self.clip_mean, self.clip_mean)
        return th.tanh(mean) * self.half_range + self.center


def _flat_actor(model: BaseAlgorithm) -> Any:
    actor = model.actor  # type: ignore[attr-defined]
    if not isinstance(actor.features_extractor, FlattenExtractor):
        raise ValueError(
            f"export_policy: features extractor {type(actor.features_extractor).__name__}: "
            "accepted: the default FlattenExtractor"
        )
    return actor


class SACDeployedPolicy(nn.Module):
    """``obs -> action`` of SB3's SAC actor (``latent_pi`` -> ``mu`` -> tanh -> SB3's rescaling),
    deterministic; also TQC's, the same actor, and CrossQ's, whose BatchRenorm layers (each in
    front of a Linear) are folded into those Linear layers (:func:`_fold_norms`). A masked actor
    is exported as it is: its pruned weights are zeros in dense matrices, which is what
    unstructured pruning deploys without sparse kernels."""

    half_range: th.Tensor
    center: th.Tensor

    def __init__(self, model: BaseAlgorithm) -> None:
        super().__init__()
        actor = _flat_actor(model)
        self.latent_pi, self.mu = _fold_norms(copy.deepcopy(actor.latent_pi).cpu(), copy.deepcopy(actor.mu).cpu())
        _register_action_rescaling(self, model.action_space)  # type: ignore[arg-type]
        self.eval()

    def forward(self, obs: th.Tensor) -> th.Tensor:
        return th.tanh(self.mu(self.latent_pi(obs))) * self.half_range + self.center


class TD3DeployedPolicy(nn.Module):
    """``obs -> action`` of SB3's TD3 actor: ``mu`` (Linear / activation layers ending in tanh)
    -> SB3's rescaling."""

    half_range: th.Tensor
    center: th.Tensor

    def __init__(self, model: BaseAlgorithm) -> None:
        super().__init__()
        (self.mu,) = _fold_norms(copy.deepcopy(_flat_actor(model).mu).cpu())
        _register_action_rescaling(self, model.action_space)  # type: ignore[arg-type]
        self.eval()

    def forward(self, obs: th.Tensor) -> th.Tensor:
        return self.mu(obs) * self.half_range + self.center


def deployed_policy(model: BaseAlgorithm) -> nn.Module:
    """The exported module of ``model``: :class:`DeployedPolicy` for the OFEXi algorithms,
    :class:`SACDeployedPolicy` for SAC, its peers and TQC, :class:`TD3DeployedPolicy` for TD3."""
    policy = model.policy
    if hasattr(policy, "ofe"):
        return DeployedPolicy(policy)  # type: ignore[arg-type]
    actor = getattr(model, "actor", None)
    # TQC's actor is SAC's (sb3_contrib's own class): recognised by its parts
    sac_like = all(hasattr(actor, part) for part in ("latent_pi", "mu", "log_std"))
    if isinstance(policy, SACPolicy) or (sac_like and policy.squash_output):
        return SACDeployedPolicy(model)
    if isinstance(policy, TD3Policy):
        return TD3DeployedPolicy(model)
    raise ValueError(
        f"export_policy: {type(model).__name__}: accepted: the OFEXi algorithms, SAC and its peers, TQC, TD3"
    )


#: How far the exported policy may differ from ``model.predict``, per unit of action bound. The
#: export folds BatchNorm, thetas and V into the Linear layers, which changes float32 rounding:
#: an OFE-Big actor on Hopper-v5 (6 blocks of 128 units, 512x2) differs by ~1e-5.
EXPORT_ATOL = 1e-4


def finite_box(space: spaces.Space) -> bool:
    """``space`` is a Box with finite bounds."""
    return isinstance(space, spaces.Box) and bool(np.isfinite(space.low).all() and np.isfinite(space.high).all())


def _action_scale(model: BaseAlgorithm) -> float:
    space = model.action_space
    if finite_box(space):
        return max(1.0, float(np.max(np.abs(np.concatenate([space.low, space.high])))))  # type: ignore[attr-defined]
    return 1.0


def observation_dim(model: BaseAlgorithm, who: str = "export_policy") -> int:
    """The size of ``model``'s observation, a 1-D Box; else a ``ValueError`` (``who``: its prefix)."""
    space = model.observation_space
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise ValueError(
            f"{who}: observation space {space}: accepted: a 1-D Box (wrap dict observations in gymnasium's "
            "FlattenObservation before training)"
        )
    return int(space.shape[0])


def check_against_predict(
    got: np.ndarray,
    expected: np.ndarray,
    obs: np.ndarray,
    tolerance: float,
    what: str,
    against: str = "model.predict",
    hint: str = "",
) -> float:
    """``max |got - expected|``, or a ``RuntimeError`` (``what``: its subject) when it is above
    ``tolerance`` or NaN, or when ``got`` holds NaN or inf for finite ``obs``."""
    got = np.asarray(got, np.float32)
    error = float(np.abs(got - np.asarray(expected, np.float32)).max())
    if np.isfinite(obs).all() and not np.isfinite(got).all():
        raise RuntimeError(f"{what} returns NaN or inf for finite observations{hint}")
    if not error <= tolerance:  # NaN fails too
        raise RuntimeError(
            f"{what} differs from {against} by {error:.3g} (> {tolerance:.3g}) on {len(got)} observations{hint}"
        )
    return error


def c_location(path: str | pathlib.Path) -> tuple[pathlib.Path, str] | None:
    """For a C export to ``path``: ``(folder, default name)``: a folder (or a path without suffix)
    and ``policy``, or a ``.c`` / ``.h`` file's folder and stem; ``None`` for any other path."""
    path = pathlib.Path(path)
    if path.is_dir() or path.suffix == "":
        return path, "policy"
    return (path.parent, path.stem) if path.suffix in C_SUFFIXES else None


def _sample_observations(model: BaseAlgorithm, n: int) -> np.ndarray:
    space = model.observation_space
    rng = np.random.default_rng(0)
    low = np.where(np.isfinite(space.low), space.low, -3.0)  # type: ignore[attr-defined]
    high = np.where(np.isfinite(space.high), space.high, 3.0)  # type: ignore[attr-defined]
    return rng.uniform(low, high, (n, *space.shape)).astype(np.float32)  # type: ignore[misc]
