"""Deployment export of every algorithm the package trains or compares, through one exporter (so
their latencies are measured alike): ONNX, TorchScript, and C99 (:mod:`sb3_ofexi.common.c_export`),
each written from the folded module of :mod:`sb3_ofexi.common.deploy` and checked against
``model.predict``.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from torch import nn

from sb3_ofexi.common.deploy import (  # noqa: F401 (the folded modules, also importable from here)
    C_SUFFIXES,
    EXPORT_ATOL,
    DeployedPolicy,
    SACDeployedPolicy,
    TD3DeployedPolicy,
    _action_scale,
    _fold_norms,
    _sample_observations,
    c_location,
    check_against_predict,
    deployed_policy,
    observation_dim,
)

SUFFIXES = (".onnx", ".pt")
#: ``format=`` of :func:`export_policy`; C is written as ``NAME.h`` + ``NAME.c`` (a ``.c`` / ``.h`` path or a folder)
FORMATS = ("onnx", "pt", "c")


def export_format(path: str | pathlib.Path, format: str | None = None) -> str:
    """The format of an export to ``path``: ``format`` if given (checked against the suffix), else
    the suffix's: ``.onnx``, ``.pt``, ``.c`` / ``.h`` or a folder (C)."""
    path = pathlib.Path(path)
    inferred = "c" if c_location(path) is not None else {".onnx": "onnx", ".pt": "pt"}.get(path.suffix)
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
    obs_dim = observation_dim(model)
    if path.suffix == ".onnx":
        _need_onnx()
    deployed = deployed_policy(model)
    example = th.zeros(2, obs_dim)
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
        tolerance = EXPORT_ATOL * _action_scale(model)
        check_against_predict(run_exported(path, obs), expected, obs, tolerance, f"The exported policy {path}")
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
