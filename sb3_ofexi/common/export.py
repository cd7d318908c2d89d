"""Deployment export: phi_o + actor mean, deterministic, at the pruned shapes (Table 1); and the
same export for every SAC-family model of the package (stock SAC, PolyPruneSAC, EauDeSAC), so
their latencies are measured through one exporter. Formats: ONNX, TorchScript, and C99
(:mod:`sb3_ofexi.common.c_export`, generated from the same folded modules).

The exported graph folds every evaluation-mode constant into weights: BatchNorm into the
preceding Linear, the thetas and the diagonal V of the DenseNet into the columns of the
Linear layers that read them, and the log-std rows of the actor's output are dropped. What
is left per block is Linear -> SiLU -> concat; the actor is a plain MLP.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import pathlib
import warnings
from collections.abc import Iterator
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

SUFFIXES = (".onnx", ".pt")
#: ``format=`` of :func:`export_policy`; C is written as ``NAME.h`` + ``NAME.c`` (a ``.c`` / ``.h`` path or a folder)
FORMATS = ("onnx", "pt", "c")
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
    deterministic; also TQC's, the same actor. A masked actor is exported as it is: its pruned
    weights are zeros in dense matrices, which is what unstructured pruning deploys without
    sparse kernels."""

    half_range: th.Tensor
    center: th.Tensor

    def __init__(self, model: BaseAlgorithm) -> None:
        super().__init__()
        actor = _flat_actor(model)
        self.latent_pi = copy.deepcopy(actor.latent_pi).cpu()
        self.mu = copy.deepcopy(actor.mu).cpu()
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
        self.mu = copy.deepcopy(_flat_actor(model).mu).cpu()
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


def _action_scale(model: BaseAlgorithm) -> float:
    space = model.action_space
    if isinstance(space, spaces.Box) and np.all(np.isfinite(space.high)) and np.all(np.isfinite(space.low)):
        return max(1.0, float(np.max(np.abs(np.concatenate([space.low, space.high])))))
    return 1.0


def export_format(path: str | pathlib.Path, format: str | None = None) -> str:
    """The format of an export to ``path``: ``format`` if given (checked against the suffix), else
    the suffix's: ``.onnx``, ``.pt``, ``.c`` / ``.h`` or a folder (C)."""
    path = pathlib.Path(path)
    by_suffix = {".onnx": "onnx", ".pt": "pt", ".c": "c", ".h": "c", "": "c"}
    inferred = "c" if path.is_dir() else by_suffix.get(path.suffix)
    if format is None:
        if inferred is None:
            raise ValueError(
                f"Cannot export to {str(path)!r}: accepted suffixes are {', '.join(SUFFIXES + C_SUFFIXES)} "
                "(or a folder, for C)"
            )
        return inferred
    if format not in FORMATS:
        raise ValueError(f"export_policy: format={format!r}: accepted: {', '.join(FORMATS)} (or None: from the suffix)")
    if inferred != format:
        wanted = "a .c or .h path, or a folder" if format == "c" else f"a .{format} path"
        raise ValueError(f"Cannot export format={format!r} to {str(path)!r}: accepted: {wanted}")
    return format


def export_policy(
    model: BaseAlgorithm,
    path: str | pathlib.Path,
    check: bool | None = None,
    *,
    format: str | None = None,
    **c_options: Any,
) -> nn.Module:
    """Write the deployment policy to ``.onnx`` (checked with onnxruntime), ``.pt`` (TorchScript)
    or C99 (``NAME.h`` + ``NAME.c``, compiled and called through ctypes to check it).

    :param path: the file (``.onnx``, ``.pt``, ``.c`` or ``.h``) or, for C, a folder
    :param check: compare the export against ``model.predict(obs, deterministic=True)`` on a
        batch of observations and raise if they differ by more than :data:`EXPORT_ATOL` times
        the largest action bound. Default: always for ONNX / TorchScript; for C when a C
        compiler exists
    :param format: ``"onnx"``, ``"pt"`` or ``"c"``; default: from the suffix
    :param c_options: for C only: ``name``, ``dtype``, ``sparse``, ``vec_normalize``, ``obs``,
        ``int8_max_error`` (:func:`sb3_ofexi.common.c_export.export_c`, which also returns what
        was written and measured)
    :return: the in-memory module that was exported (:func:`deployed_policy`)
    """
    path = pathlib.Path(path)
    kind = export_format(path, format)
    if kind == "c":
        from sb3_ofexi.common.c_export import export_c

        return export_c(model, path, check=check, **c_options).module
    if c_options:
        raise ValueError(f"export_policy: {', '.join(sorted(c_options))}: accepted with format='c' only")
    check = True if check is None else check
    space = model.observation_space
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"export_policy: observation space {space}: accepted: a 1-D Box")
    if path.suffix == ".onnx":
        _need_onnx()
    deployed = deployed_policy(model)
    example = th.zeros(2, space.shape[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_exporter():
        if path.suffix == ".onnx":
            batch = th.export.Dim("batch", min=1)
            program = th.onnx.export(
                deployed,
                (example,),
                input_names=["obs"],
                output_names=["action"],
                dynamic_shapes={"obs": {0: batch}},
                dynamo=True,
                verbose=False,
            )
            assert program is not None  # torch returns None only for dynamo=False
            program.save(str(path))
        else:
            th.jit.save(th.jit.trace(deployed, example), str(path))
    if check:
        obs = _sample_observations(model, 64)
        expected, _ = model.predict(obs, deterministic=True)
        got = run_exported(path, obs)
        error = float(np.abs(got - expected).max())
        tolerance = EXPORT_ATOL * _action_scale(model)
        if error > tolerance:
            raise RuntimeError(
                f"The exported policy {path} differs from model.predict by {error:.3g} (> {tolerance:.3g})"
            )
    return deployed


def _need_onnx() -> None:
    """ONNX export needs onnx, onnxscript and (to check the file) onnxruntime: the ``export`` extra."""
    import importlib.util

    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"Exporting to .onnx needs {', '.join(missing)}: pip install 'sb3_ofexi[export]' "
            "(or export to .pt, TorchScript, which needs nothing more)"
        )


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
    """Actions of an exported policy (``.onnx`` through onnxruntime, ``.pt`` through TorchScript,
    C compiled and called through ctypes)."""
    path = pathlib.Path(path)
    obs = np.asarray(obs, dtype=np.float32).reshape(-1, np.asarray(obs).shape[-1])
    if export_format(path) == "c":
        from sb3_ofexi.common.c_build import build_c_policy

        policy = build_c_policy(path)
        try:
            return policy(obs)
        finally:
            policy.close()
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {"obs": obs})[0]
    module = th.jit.load(str(path), map_location="cpu")
    with th.no_grad():
        return module(th.as_tensor(obs)).numpy()


def _sample_observations(model: BaseAlgorithm, n: int) -> np.ndarray:
    space = model.observation_space
    rng = np.random.default_rng(0)
    low = np.where(np.isfinite(space.low), space.low, -3.0)  # type: ignore[attr-defined]
    high = np.where(np.isfinite(space.high), space.high, 3.0)  # type: ignore[attr-defined]
    return rng.uniform(low, high, (n, *space.shape)).astype(np.float32)  # type: ignore[misc]
