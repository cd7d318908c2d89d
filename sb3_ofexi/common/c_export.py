"""Deploy without Python: the deterministic policy as dependency-free C99 (a ``.h`` and a ``.c``).

The C code is generated from the same folded module as the ONNX / TorchScript export
(:func:`sb3_ofexi.common.export.deployed_policy`: BatchNorm / BatchRenorm, the thetas and the
DenseNet's diagonal V already folded into the Linear layers, pruned units gone), read first into
a list of ops (:class:`Normalize`, :class:`Linear` -- with ``concat`` a DenseNet block --,
:class:`Elementwise`, :class:`Clamp`, :class:`Rescale`) that :func:`generate_c` walks, one
emitter per op (:class:`_Writer`). Another deterministic actor plugs in by building its folded
module and registering how it reads as ops (:func:`register_ir_extractor`), as SB3's TD3 actor
does (:func:`sequential_ops` plus a :class:`Rescale`); TQC's and CrossQ's actors are SAC's;
TD3_OFEXi and TQC_OFEXi fold into :class:`~sb3_ofexi.common.export.DeployedPolicy` like SAC_OFEXi.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import os
import pathlib
import re
import tempfile
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from torch import nn

from sb3_ofexi.common.c_build import CFLAGS, CPolicy, find_compiler, need_compiler
from sb3_ofexi.common.deploy import (
    EXPORT_ATOL,
    DeployedPolicy,
    SACDeployedPolicy,
    TD3DeployedPolicy,
    _action_scale,
    _sample_observations,
    c_location,
    check_against_predict,
    deployed_policy,
    finite_box,
    observation_dim,
)
from sb3_ofexi.version import __version__

#: what ``dtype=`` and ``sparse=`` accept
DTYPES = ("float32", "int8")
SPARSE_MODES = ("auto", "never", "always")
#: default bound on int8's action error, per unit of the largest action bound (at least 1), as
#: :data:`~sb3_ofexi.common.export.EXPORT_ATOL`: 0.05 is 2.5% of a [-1, 1] action's range
INT8_MAX_ERROR = 0.05
#: observations the check compares on when none are given
CHECK_OBSERVATIONS = 1000
#: outputs of a dense layer are padded to a multiple of this with zero weights, so that the
#: inner loop has a trip count GCC's -O2 vectoriser accepts (a 16-byte vector: 4 floats, 16 int8),
#: unless that would add more than a quarter to the layer (tiny layers, e.g. a 1-D action head,
#: cost little unvectorised)
PAD = {"float32": 4, "int8": 16}
#: inputs a dense layer adds per pass over its sums (see generate_c)
UNROLL = 4
#: in the provenance comment on top of every file written: a file without it is not overwritten
GENERATED_MARK = "Exported by sb3_ofexi"

_C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if inline int long "
    "register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while".split()
)
#: the standard C headers' stems: ``math.h`` beside the source would hide ``<math.h>`` (compared
#: without case: macOS and Windows file systems ignore it)
_C_HEADERS = frozenset(
    "assert complex ctype errno fenv float inttypes iso646 limits locale math setjmp signal stdalign stdarg "
    "stdatomic stdbit stdbool stdckdint stddef stdint stdio stdlib stdnoreturn string tgmath threads time uchar "
    "wchar wctype".split()
)


# --- the intermediate representation ---------------------------------------------------------
@dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity: ``kind`` one of ``identity relu silu tanh elu leaky_relu``;
    ``alpha`` is ELU's alpha or LeakyReLU's negative slope."""

    kind: str = "identity"
    alpha: float = 0.0


_ACTIVATION_MODULES: dict[type[nn.Module], str] = {
    nn.Identity: "identity",
    nn.ReLU: "relu",
    nn.SiLU: "silu",
    nn.Tanh: "tanh",
    nn.ELU: "elu",
    nn.LeakyReLU: "leaky_relu",
}
#: the modules the C exporter reads, for error messages
ACCEPTED_MODULES = "Linear, ReLU, SiLU, Tanh, ELU, LeakyReLU, Identity, Hardtanh (a clamp), Sequential"


def activation_of(module: nn.Module) -> Activation:
    """The :class:`Activation` of a torch activation module; ``ValueError`` for any other."""
    kind = _ACTIVATION_MODULES.get(type(module))
    if kind is None:
        raise ValueError(
            f"C export: activation {type(module).__name__} is not supported: accepted: "
            f"{', '.join(cls.__name__ for cls in _ACTIVATION_MODULES)}"
        )
    if isinstance(module, nn.ELU):
        return Activation(kind, float(module.alpha))
    if isinstance(module, nn.LeakyReLU):
        return Activation(kind, float(module.negative_slope))
    return Activation(kind)


@dataclass
class Linear:
    """``y = act(W x + b)``; with ``concat`` a DenseNet block, ``z <- [act(W z + b), z]``."""

    weight: np.ndarray  # (out, in), float32
    bias: np.ndarray  # (out,), float32
    activation: Activation = field(default_factory=Activation)
    concat: bool = False

    @classmethod
    def of(cls, linear: nn.Linear, activation: Activation | None = None, concat: bool = False) -> Linear:
        weight = linear.weight.detach().cpu().numpy().astype(np.float32)
        bias = (
            linear.bias.detach().cpu().numpy().astype(np.float32)
            if linear.bias is not None
            else np.zeros(weight.shape[0], np.float32)
        )
        return cls(weight, bias, activation or Activation(), concat)


@dataclass
class Elementwise:
    """An activation applied to the whole current vector."""

    activation: Activation


@dataclass
class Clamp:
    """``clamp(x, low, high)`` (SB3's gSDE ``Hardtanh`` on the mean, SAC_OFEXi's ``clip_mean``)."""

    low: float
    high: float


@dataclass
class Normalize:
    """VecNormalize: ``clip((obs - mean) / std, -clip, clip)`` with ``std = sqrt(var + epsilon)``,
    in double precision as numpy computes it, then rounded to float; ``clip`` may be ``inf``."""

    mean: np.ndarray  # float64
    std: np.ndarray  # float64
    clip: float


@dataclass
class Rescale:
    """SB3's ``unscale_action`` after tanh: ``a * half_range + center`` (float32)."""

    half_range: np.ndarray
    center: np.ndarray


Op = Linear | Elementwise | Clamp | Normalize | Rescale


@dataclass
class PolicyIR:
    """``obs (obs_dim floats) -> action``: the ops in order; :meth:`validate` checks the widths."""

    obs_dim: int
    ops: list[Op]

    def widths(self) -> list[int]:
        """The vector's width after each op."""
        width, out = self.obs_dim, []
        for k, op in enumerate(self.ops):
            if isinstance(op, Linear):
                if op.weight.shape[1] != width:
                    raise ValueError(f"C export: op {k} reads {op.weight.shape[1]} inputs, the vector has {width}")
                width = width + op.weight.shape[0] if op.concat else op.weight.shape[0]
            elif isinstance(op, Normalize | Rescale):
                size = len(op.mean) if isinstance(op, Normalize) else len(op.half_range)
                if size != width:
                    raise ValueError(f"C export: op {k} ({type(op).__name__}) has {size} entries, the vector {width}")
            out.append(width)
        return out

    def validate(self) -> None:
        self.widths()
        for k, op in enumerate(self.ops):
            names = ("weight", "bias", "mean", "std", "half_range", "center", "low", "high")
            values = [np.asarray(getattr(op, name)) for name in names if hasattr(op, name)]
            if not all(np.isfinite(v).all() for v in values):
                raise ValueError(f"C export: op {k} ({type(op).__name__}) holds NaN or inf: accepted: finite values")
            if isinstance(op, Normalize) and not op.clip > 0:
                raise ValueError(f"C export: VecNormalize's clip_obs={op.clip!r}: accepted: a number > 0 (or inf)")
            if isinstance(op, Rescale) and k != len(self.ops) - 1:
                raise ValueError(f"C export: the rescaling is op {k}: accepted: only as the last op")


IRExtractor = Callable[[Any], list[Op]]
_EXTRACTORS: dict[type[nn.Module], IRExtractor] = {}


def register_ir_extractor(module_type: type[nn.Module]) -> Callable[[IRExtractor], IRExtractor]:
    """Declare how a folded deployment module (e.g. a future TD3's) reads as ops."""

    def decorator(function: IRExtractor) -> IRExtractor:
        _EXTRACTORS[module_type] = function
        return function

    return decorator


def _merge_activations(ops: list[Op]) -> list[Op]:
    """An activation right after a plain Linear becomes that Linear's (one loop in C instead of two)."""
    merged: list[Op] = []
    for op in ops:
        last = merged[-1] if merged else None
        if (
            isinstance(op, Elementwise)
            and isinstance(last, Linear)
            and not last.concat
            and last.activation.kind == "identity"
        ):
            last.activation = op.activation
        elif not (isinstance(op, Elementwise) and op.activation.kind == "identity"):
            merged.append(op)
    return merged


def sequential_ops(module: nn.Module) -> list[Op]:
    """The ops of a chain of Linear / activation / Hardtanh modules (nested ``Sequential`` or
    ``ModuleList`` included); ``ValueError`` naming any other module."""
    if isinstance(module, nn.Sequential | nn.ModuleList):
        return _merge_activations([op for child in module for op in sequential_ops(child)])
    if isinstance(module, nn.Linear):
        return [Linear.of(module)]
    if isinstance(module, nn.Hardtanh):  # ReLU6 included: Hardtanh(0, 6)
        return [Clamp(float(module.min_val), float(module.max_val))]
    if type(module) in _ACTIVATION_MODULES:
        return [Elementwise(activation_of(module))]
    raise ValueError(f"C export: module {type(module).__name__} is not supported: accepted: {ACCEPTED_MODULES}")


def _rescale(module: nn.Module) -> Rescale:
    return Rescale(
        module.half_range.detach().cpu().numpy().astype(np.float32),  # type: ignore[operator]
        module.center.detach().cpu().numpy().astype(np.float32),  # type: ignore[operator]
    )


@register_ir_extractor(DeployedPolicy)
def _ofexi_ops(module: DeployedPolicy) -> list[Op]:
    """phi_o's blocks (concat), the actor's hidden layers, the mean, gSDE's clip, tanh, rescaling."""
    block = activation_of(module.block_activation)
    ops: list[Op] = [Linear.of(linear, block, concat=True) for linear in module.blocks]  # type: ignore[arg-type]
    hidden = activation_of(module.activation)
    ops += [Linear.of(linear, hidden) for linear in module.hidden]  # type: ignore[arg-type]
    ops.append(Linear.of(module.mean))
    if module.clip_mean > 0:
        ops.append(Clamp(-module.clip_mean, module.clip_mean))
    return _merge_activations([*ops, Elementwise(Activation("tanh")), _rescale(module)])


@register_ir_extractor(SACDeployedPolicy)
def _sac_ops(module: SACDeployedPolicy) -> list[Op]:
    """SB3's actor: ``latent_pi`` (Linear / activation), ``mu`` (Linear, gSDE's Hardtanh), tanh, rescaling."""
    ops = [*sequential_ops(module.latent_pi), *sequential_ops(module.mu), Elementwise(Activation("tanh"))]
    return _merge_activations([*ops, _rescale(module)])


@register_ir_extractor(TD3DeployedPolicy)
def _td3_ops(module: TD3DeployedPolicy) -> list[Op]:
    """SB3's TD3 actor: ``mu`` (Linear / activation, ending in tanh), rescaling."""
    return _merge_activations([*sequential_ops(module.mu), _rescale(module)])


def policy_ir(module: nn.Module, obs_dim: int, normalize: Normalize | None = None) -> PolicyIR:
    """The ops of a folded deployment module (:func:`~sb3_ofexi.common.export.deployed_policy`),
    after an optional observation normalisation."""
    extractor = next((fn for cls, fn in _EXTRACTORS.items() if isinstance(module, cls)), None)
    if extractor is None:
        accepted = ", ".join(cls.__name__ for cls in _EXTRACTORS)
        raise ValueError(f"C export: module {type(module).__name__} is not supported: accepted: {accepted}")
    ir = PolicyIR(obs_dim, ([normalize] if normalize is not None else []) + extractor(module))
    ir.validate()
    return ir


# --- int8 and a numpy reference of the ops --------------------------------------------------------
def quantize_int8(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric quantisation: ``scale = max|w_row| / 127``, ``q = round(w / scale)``.

    :return: ``(q, scale)``: int8 ``(out, in)`` and float32 ``(out,)``; an all-zero row has scale 0
    """
    scale = (np.abs(weight).max(axis=1, initial=0.0) / 127.0).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(weight / safe[:, None]), -127, 127).astype(np.int8)
    return q, scale


def _activate(x: np.ndarray, activation: Activation) -> np.ndarray:
    kind, alpha = activation.kind, np.float32(activation.alpha)
    if kind == "relu":
        return np.maximum(x, np.float32(0))
    if kind == "silu":
        return x / (np.float32(1) + np.exp(-x))
    if kind == "tanh":
        return np.tanh(x)
    if kind == "elu":
        return np.where(x > 0, x, alpha * np.expm1(x))
    if kind == "leaky_relu":
        return np.where(x > 0, x, alpha * x)
    return x


def run_ir(ir: PolicyIR, obs: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """The ops in numpy (float32; int8 weights dequantised per row as the C code does): the
    reference for int8's error when no compiler checks the C itself."""
    x = np.asarray(obs, dtype=np.float32).reshape(-1, ir.obs_dim)
    with np.errstate(over="ignore"):  # exp(-x) of a very negative SiLU input: inf, then x / inf = -0
        for op in ir.ops:
            if isinstance(op, Normalize):
                x = np.clip((x.astype(np.float64) - op.mean) / op.std, -op.clip, op.clip).astype(np.float32)
            elif isinstance(op, Linear):
                if dtype == "int8":
                    q, scale = quantize_int8(op.weight)
                    y = (x @ q.T.astype(np.float32)) * scale + op.bias
                else:
                    y = x @ op.weight.T + op.bias
                y = _activate(y.astype(np.float32), op.activation)
                x = np.concatenate([y, x], axis=1) if op.concat else y
            elif isinstance(op, Elementwise):
                x = _activate(x, op.activation)
            elif isinstance(op, Clamp):
                x = np.clip(x, np.float32(op.low), np.float32(op.high))
            else:
                x = x * op.half_range + op.center
    return x.astype(np.float32)


# --- C generation --------------------------------------------------------------------------------
@dataclass
class LayerStorage:
    """How one Linear's weights are stored in C."""

    op: int  # index in the IR
    rows: int
    cols: int
    nonzero: int  # weights stored nonzero (int8: after quantisation)
    sparse: bool  # compressed sparse row
    dtype: str
    bytes_dense: int  # float32, rows x cols
    bytes_stored: int  # as written: values, int8 scales, CSR indices and row pointers, padding

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero / (self.rows * self.cols) if self.rows * self.cols else 0.0


def _index_type(largest: int) -> tuple[str, int]:
    return ("unsigned short", 2) if largest <= 0xFFFF else ("unsigned int", 4)


def _padded(rows: int, dtype: str) -> int:
    padded = -(-rows // PAD[dtype]) * PAD[dtype]
    return padded if padded - rows <= rows // 4 else rows


def layer_storage(op_index: int, op: Linear, dtype: str, sparse: str) -> LayerStorage:
    """Dense or CSR for one layer. ``auto``: CSR when more than half the weights are zero and CSR
    takes fewer bytes than the dense form; ``always`` / ``never`` force it."""
    rows, cols = op.weight.shape
    if rows * cols == 0:  # nothing stored (see generate_c)
        return LayerStorage(op_index, rows, cols, 0, False, dtype, 0, 0)
    nonzero = int(np.count_nonzero(quantize_int8(op.weight)[0] if dtype == "int8" else op.weight))
    value_bytes = 1 if dtype == "int8" else 4
    scales = 4 * rows if dtype == "int8" else 0
    dense = cols * _padded(rows, dtype) * value_bytes + scales
    csr = max(nonzero, 1) * (value_bytes + _index_type(cols - 1)[1]) + (rows + 1) * _index_type(nonzero)[1] + scales
    sparsity = 1.0 - nonzero / (rows * cols)
    use_csr = sparse == "always" or (sparse == "auto" and sparsity > 0.5 and csr < dense)
    return LayerStorage(op_index, rows, cols, nonzero, use_csr, dtype, 4 * rows * cols, csr if use_csr else dense)


def _c_float(value: float) -> str:
    """The shortest decimal that reads back as the same float32 (numpy's repr), as a C float literal."""
    return f"{str(np.float32(value))}f"


def _c_double(value: float) -> str:
    return repr(float(value))


def _c_array(ctype: str, name: str, values: np.ndarray, per_line: int = 8) -> str:
    """``static const ctype name[n] = {...};`` or ``[rows][cols]`` for a 2-D array, wrapped."""
    if ctype == "float":
        fmt: Callable[[Any], str] = _c_float
    elif ctype == "double":
        fmt = _c_double
    else:
        fmt = str

    def row(items: np.ndarray, indent: str) -> str:
        text = [fmt(v) for v in items.tolist()]
        lines = [", ".join(text[i : i + per_line]) for i in range(0, len(text), per_line)]
        return f",\n{indent}".join(lines)

    if values.ndim == 1:
        return f"static const {ctype} {name}[{len(values)}] = {{\n    {row(values, '    ')}\n}};"
    body = ",\n".join(f"    {{{row(r, '     ')}}}" for r in values)
    return f"static const {ctype} {name}[{values.shape[0]}][{values.shape[1]}] = {{\n{body}\n}};"


#: NaN goes through every activation, as in torch
_C_ACTIVATIONS = {
    "relu": "static float act_relu(float v) { return v < 0.0f ? 0.0f : v; }",
    "silu": "static float act_silu(float v) { return v / (1.0f + expf(-v)); }",
    "tanh": "static float act_tanh(float v) { return tanhf(v); }",
    "elu": "static float act_elu(float v, float alpha) { return v > 0.0f ? v : alpha * expm1f(v); }",
    "leaky_relu": "static float act_leaky_relu(float v, float slope) { return v > 0.0f ? v : slope * v; }",
}


def _apply(activation: Activation, value: str) -> str:
    if activation.kind == "identity":
        return value
    if activation.kind in ("elu", "leaky_relu"):
        return f"act_{activation.kind}({value}, {_c_float(activation.alpha)})"
    return f"act_{activation.kind}({value})"


@dataclass
class _Vector:
    """Where the current vector lives in the generated function: ``array[offset + i]``."""

    array: str
    offset: int
    width: int

    def at(self, index: str) -> str:
        return f"{self.array}[{self.offset} + {index}]" if self.offset else f"{self.array}[{index}]"


@dataclass
class CCode:
    """Generated text, without the provenance comment (see :func:`c_files`)."""

    name: str
    header: str
    source: str
    layers: list[LayerStorage]
    notes: list[str]  # what each op became, for the provenance comment


def check_name(name: str) -> str:
    """``name`` if it makes safe C names and files (``<name>_act``, ``<name>.h``), else a ``ValueError``."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) or name in _C_KEYWORDS:
        raise ValueError(
            f"C export: name {name!r} is not accepted: accepted: a C identifier of letters, digits and '_' "
            "that starts with a letter (a leading '_' is reserved to the C implementation) and is not a C "
            "keyword (e.g. name='pendulum_policy')"
        )
    if name.lower() in _C_HEADERS:
        raise ValueError(
            f"C export: name {name!r} would write {name}.h, which can hide the standard <{name.lower()}.h> "
            "(the source's folder is searched first; some file systems ignore case): accepted: another "
            f"name (e.g. name='{name}_policy')"
        )
    return name


def _check_options(dtype: str, sparse: str) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"C export: dtype={dtype!r}: accepted: {', '.join(DTYPES)}")
    if sparse not in SPARSE_MODES:
        raise ValueError(f"C export: sparse={sparse!r}: accepted: {', '.join(SPARSE_MODES)}")


class _Writer:
    """``<name>_act`` being generated, one op after the other: static arrays (``data``), local
    arrays, statements (``body``). Local names: arrays ``x<k>``, ``h<k>``, ``z<k>`` (op k's),
    ``acc``; scalars ``i``, ``j``, ``k``, ``v``, ``sum``, ``in0`` .. ``in3``, ``in_j``."""

    def __init__(self, ir: PolicyIR, dtype: str, sparse: str) -> None:
        self.ir, self.dtype, self.sparse, self.widths = ir, dtype, sparse, ir.widths()
        self.data: list[str] = []
        self.body: list[str] = []
        self.local: list[str] = []
        self.layers: list[LayerStorage] = []
        self.used: set[str] = set()  # activations and loop variables that appear
        self.accumulator = 0  # floats in acc, a dense layer's sums
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        """A comment in the code, and a line of the provenance's ops."""
        self.notes.append(text)
        self.body.append(f"    /* {text} */")

    def static(self, comment: str, *arrays: tuple[str, str, np.ndarray]) -> None:
        self.data += [f"/* {comment} */", *(_c_array(*array) for array in arrays)]

    def array(self, prefix: str, size: int, k: int) -> _Vector:
        self.local.append(f"float {prefix}{k}[{size}];")
        return _Vector(f"{prefix}{k}", 0, size)

    def concat(self, k: int) -> bool:
        op = self.ir.ops[k] if k < len(self.ir.ops) else None
        return isinstance(op, Linear) and op.concat

    def densenet(self, first: int, width: int, k: int) -> _Vector:
        """One array for the DenseNet of blocks ``first, first + 1, ...``: its input (``width``
        floats, where this returns) at the end, each block's units in front of the previous
        vector, so the concatenations cost nothing."""
        end = first
        while self.concat(end):
            end += 1
        z = self.array("z", self.widths[end - 1], k)
        self.body.append(f"    /* DenseNet: {z.array} = [block {end - first - 1}, ..., block 0, input] */")
        return _Vector(z.array, z.width - width, width)

    def copy(self, source: _Vector, target: _Vector) -> _Vector:
        self.body.append(f"    for (i = 0; i < {source.width}; ++i) {target.at('i')} = {source.at('i')};")
        return target

    def writable(self, vector: _Vector, k: int) -> _Vector:
        """A copy of the (const) input before an in-place op."""
        return self.copy(vector, self.array("x", vector.width, k)) if vector.array == "obs" else vector

    def normalize(self, k: int, op: Normalize) -> _Vector:
        """Written straight into the DenseNet's tail when one follows."""
        width = self.ir.obs_dim
        target = self.densenet(k + 1, width, k) if self.concat(k + 1) else self.array("x", width, k)
        mean, std = ("double", f"obs_mean{k}", op.mean), ("double", f"obs_std{k}", op.std)
        self.static(f"op {k}: VecNormalize's mean and sqrt(var + epsilon)", mean, std)
        value = f"((double)obs[i] - obs_mean{k}[i]) / obs_std{k}[i]"
        what = f"op {k}: VecNormalize of obs, in double as numpy computes it:"
        if np.isinf(op.clip):  # clip_obs=inf: nothing to clip
            self.note(f"{what} (obs - mean) / sqrt(var + eps), no clip (clip_obs is inf)")
            self.body.append(f"    for (i = 0; i < {width}; ++i) {target.at('i')} = (float)({value});")
            return target
        clip = _c_double(op.clip)
        self.note(f"{what} clip((obs - mean) / sqrt(var + eps), -{op.clip:g}, {op.clip:g})")
        self.body += [
            f"    for (i = 0; i < {width}; ++i) {{",
            f"        double v = {value};",
            f"        {target.at('i')} = (float)(v < -{clip} ? -{clip} : (v > {clip} ? {clip} : v));",
            "    }",
        ]
        return target

    def linear(self, k: int, op: Linear, vector: _Vector) -> _Vector:
        rows, cols = op.weight.shape
        storage = layer_storage(k, op, self.dtype, self.sparse)
        self.layers.append(storage)
        if rows == 0:  # every unit pruned: a DenseNet block adds nothing, a plain layer leaves nothing
            self.note(f"op {k}: Linear {cols} -> 0: every unit was pruned")
            return vector if op.concat else _Vector("obs", 0, 0)
        self.used.add(op.activation.kind)
        out = _Vector(vector.array, vector.offset - rows, rows) if op.concat else self.array("h", rows, k)
        kind = op.activation.kind
        if cols == 0:  # fed by a layer pruned to nothing
            self.static(
                f"op {k}: bias (the layer has no inputs left: its output is act(bias))", ("float", f"l{k}_b", op.bias)
            )
            self.note(f"op {k}: Linear 0 -> {rows}, {kind}: no inputs left")
            self.body.append(f"    for (i = 0; i < {rows}; ++i) {out.at('i')} = {_apply(op.activation, f'l{k}_b[i]')};")
            return _Vector(out.array, out.offset, rows + cols) if op.concat else out
        what = (
            f"DenseNet block, {cols} -> {rows} units, then concat -> {cols + rows}"
            if op.concat
            else f"Linear {cols} -> {rows}"
        )
        form = f"{'CSR' if storage.sparse else 'dense'} {self.dtype}, {storage.bytes_stored:,} bytes"
        self.note(f"op {k}: {what}, {kind}; {storage.nonzero:,} of {rows * cols:,} weights nonzero, {form}")
        values, ctype, cast = op.weight, "float", ""
        if self.dtype == "int8":
            values, scale = quantize_int8(op.weight)
            ctype, cast = "signed char", "(float)"
            self.static(f"op {k}: per-row scales of the int8 weights (w = q * scale)", ("float", f"l{k}_scale", scale))
        scaled = f" * l{k}_scale[i]" if self.dtype == "int8" else ""
        store = f"{out.at('i')} = {_apply(op.activation, f'%s{scaled} + l{k}_b[i]')};"  # %s: the sum
        (self.csr if storage.sparse else self.dense)(k, values, ctype, cast, vector, store)
        self.static(f"op {k}: bias", ("float", f"l{k}_b", op.bias))
        return _Vector(out.array, out.offset, rows + cols) if op.concat else out

    def csr(self, k: int, values: np.ndarray, ctype: str, cast: str, vector: _Vector, store: str) -> None:
        """Compressed sparse rows; ``store`` writes output i from its sum (``%s``)."""
        rows, cols = values.shape
        nz_rows, nz_cols = np.nonzero(values)
        pointers = np.concatenate([[0], np.cumsum(np.bincount(nz_rows, minlength=rows))])
        entries = values[nz_rows, nz_cols]
        if len(entries) == 0:  # C has no empty arrays: one unused entry
            entries, nz_cols = np.zeros(1, values.dtype), np.zeros(1, np.int64)
        self.static(
            f"op {k}: weights in compressed sparse rows: row i's are entries rows[i] .. rows[i + 1] - 1",
            (ctype, f"l{k}_values", entries),
            (_index_type(cols - 1)[0], f"l{k}_cols", nz_cols),
            (_index_type(int(pointers[-1]))[0], f"l{k}_rows", pointers),
        )
        product = f"{cast}l{k}_values[k] * {vector.at(f'l{k}_cols[k]')}"
        self.body += [
            f"    for (i = 0; i < {rows}; ++i) {{",
            "        float sum = 0.0f;",
            f"        for (k = l{k}_rows[i]; k < l{k}_rows[i + 1]; ++k) sum += {product};",
            f"        {store % 'sum'}",
            "    }",
        ]
        self.used.add("k")

    def dense(self, k: int, values: np.ndarray, ctype: str, cast: str, vector: _Vector, store: str) -> None:
        """Input-major loops into ``acc``: each output still sums its inputs in order j = 0, 1, ...
        (as a plain dot product: the parentheses fix the order, so a CSR layer gives the same bits
        for finite inputs; a NaN or inf input times a stored zero is NaN here only), but the inner
        loop runs over independent outputs, which -O2 vectorises; UNROLL inputs per pass over acc
        saves loads and stores of the sums."""
        rows, cols = values.shape
        padded = _padded(rows, self.dtype)
        self.accumulator = max(self.accumulator, padded)
        stored = np.zeros((cols, padded), values.dtype)
        stored[:, :rows] = values.T
        pad = f", padded to {padded} with zeros" if padded > rows else ""
        comment = f"op {k}: weights, transposed: row j holds input j's weight for every output ({rows} outputs{pad})"
        self.static(comment, (ctype, f"l{k}_w", stored))
        self.body.append(f"    for (i = 0; i < {padded}; ++i) acc[i] = 0.0f;")
        if cols >= UNROLL:
            terms = f"acc[i] + {cast}l{k}_w[j][i] * in0"
            for u in range(1, UNROLL):
                terms = f"({terms}) + {cast}l{k}_w[j + {u}][i] * in{u}"
            inputs = ", ".join(f"in{u} = {vector.at(f'j + {u}' if u else 'j')}" for u in range(UNROLL))
            self.body += [
                f"    for (j = 0; j + {UNROLL} <= {cols}; j += {UNROLL}) {{",
                f"        const float {inputs};",
                f"        for (i = 0; i < {padded}; ++i)",
                f"            acc[i] = {terms};",
                "    }",
            ]
        if cols % UNROLL:
            self.body += [
                f"    for ({'' if cols >= UNROLL else 'j = 0'}; j < {cols}; ++j) {{",
                f"        const float in_j = {vector.at('j')};",
                f"        for (i = 0; i < {padded}; ++i) acc[i] += {cast}l{k}_w[j][i] * in_j;",
                "    }",
            ]
        self.body.append(f"    for (i = 0; i < {rows}; ++i) {store % 'acc[i]'}")
        self.used.add("j")

    def elementwise(self, k: int, op: Elementwise | Clamp, vector: _Vector) -> _Vector:
        """An activation or a clamp, in place."""
        vector = self.writable(vector, k)
        value = vector.at("i")
        if isinstance(op, Elementwise):
            self.used.add(op.activation.kind)
            self.note(f"op {k}: {op.activation.kind}")
            new = _apply(op.activation, value)
        else:
            low, high = _c_float(op.low), _c_float(op.high)
            self.note(f"op {k}: clamp to [{op.low:g}, {op.high:g}]")
            new = f"{value} < {low} ? {low} : ({value} > {high} ? {high} : {value})"
        self.body.append(f"    for (i = 0; i < {vector.width}; ++i) {value} = {new};")
        return vector

    def rescale(self, k: int, op: Rescale, vector: _Vector) -> _Vector:
        half_range, center = ("float", "half_range", op.half_range), ("float", "center", op.center)
        comment = f"op {k}: SB3's action rescaling, low + 0.5 (a + 1) (high - low) = a * half_range + center"
        self.static(comment, half_range, center)
        self.note(f"op {k}: rescale to the action space's bounds")
        value = f"{vector.at('i')} * half_range[i] + center[i]"
        self.body.append(f"    for (i = 0; i < {vector.width}; ++i) action[i] = {value};")
        return _Vector("action", 0, vector.width)

    def source(self, name: str) -> str:
        if self.accumulator:
            self.local.append(
                f"float acc[{self.accumulator}]; /* a dense layer's sums (outputs padded, see the weights) */"
            )
        self.local += [
            "int i;",
            *(["int j;"] if "j" in self.used else []),
            *(["unsigned int k;"] if "k" in self.used else []),
        ]
        helpers = [_C_ACTIVATIONS[kind] for kind in _C_ACTIVATIONS if kind in self.used]
        lines = ["#include <math.h>", "", f'#include "{name}.h"', "", *helpers, *([""] if helpers else [])]
        lines += [block if block.startswith("/*") else f"{block}\n" for block in self.data]
        lines += [f"void {name}_act(const float *obs, float *action)", "{", *(f"    {line}" for line in self.local)]
        return "\n".join([*lines, "", *self.body, "}", ""])


#: the header; its guard in the name's case, as the other macros: names that differ in case differ here
_HEADER = """\
#ifndef {name}_POLICY_H_
#define {name}_POLICY_H_

/* floats read from obs and written to action by {name}_act */
#define {name}_OBS_DIM {obs_dim}
#define {name}_ACT_DIM {act_dim}

#ifdef __cplusplus
extern "C" {{
#endif

/* The deterministic action for one observation: obs[{name}_OBS_DIM] -> action[{name}_ACT_DIM],
 * rescaled to the action space's bounds, as predict(obs, deterministic=True). Reentrant: no
 * state, no dynamic memory; the stack holds the layers' outputs. */
void {name}_act(const float *obs, float *action);

#ifdef __cplusplus
}}
#endif

#endif /* {name}_POLICY_H_ */
"""


def generate_c(ir: PolicyIR, name: str, dtype: str = "float32", sparse: str = "auto") -> CCode:
    """The C99 text of ``ir``: ``void <name>_act(const float *obs, float *action)``, static const
    weights, no dynamic memory, nothing but ``<math.h>``."""
    check_name(name)
    _check_options(dtype, sparse)
    ir.validate()
    out = _Writer(ir, dtype, sparse)
    vector = _Vector("obs", 0, ir.obs_dim)
    # a layer left without inputs (its predecessor pruned to nothing) outputs act(bias): what comes
    # before it does not reach the action, and is not emitted (C would warn about unused values)
    start = max((k for k, op in enumerate(ir.ops) if isinstance(op, Linear) and op.weight.shape[1] == 0), default=0)
    if start:
        out.body.append(f"    (void)obs; /* ops 0 to {start - 1} do not reach the action: op {start} has no inputs */")
        vector = _Vector("obs", 0, 0)
    in_densenet = False
    for k, op in enumerate(ir.ops):
        if k < start or (isinstance(op, Elementwise | Clamp) and vector.width == 0):
            out.notes.append(f"op {k}: {type(op).__name__}: not emitted (no path to the action)")
            continue
        if out.concat(k) and not in_densenet:
            vector, in_densenet = out.copy(vector, out.densenet(k, vector.width, k)), True
        if isinstance(op, Normalize):
            vector, in_densenet = out.normalize(k, op), out.concat(k + 1)
        elif isinstance(op, Linear):
            vector, in_densenet = out.linear(k, op, vector), in_densenet and out.concat(k + 1)
        elif isinstance(op, Elementwise | Clamp):
            vector = out.elementwise(k, op, vector)
        else:  # Rescale, the last op
            vector = out.rescale(k, op, vector)
    if vector.array != "action":
        out.body.append(f"    for (i = 0; i < {vector.width}; ++i) action[i] = {vector.at('i')};")
    act_dim = out.widths[-1] if out.widths else ir.obs_dim
    header = _HEADER.format(name=name, obs_dim=ir.obs_dim, act_dim=act_dim)
    return CCode(name, header, out.source(name), out.layers, out.notes)


def c_files(code: CCode, provenance: Sequence[str]) -> tuple[str, str]:
    """``(header, source)`` with the provenance comment on top of each."""
    comment = "\n".join(["/*", *(f" * {line}".rstrip() for line in provenance), " */", ""])
    return comment + code.header, comment + code.source


# --- export ---------------------------------------------------------------------------------------
@dataclass
class CExport:
    """What :func:`export_c` wrote and measured."""

    header: pathlib.Path
    source: pathlib.Path
    name: str
    dtype: str
    sparse: str
    layers: list[LayerStorage]
    module: nn.Module  # the folded module the C code was generated from
    ir: PolicyIR
    observations: int  # how many observations the errors below are measured on
    check_error: float | None  # max |C - predict|; None: not compiled
    tolerance: float | None  # the bound check_error was held to
    int8_error: float | None  # max |int8 - predict| (the compiled C, or run_ir without a compiler)
    int8_bound: float | None

    @property
    def weight_bytes_dense(self) -> int:
        return sum(layer.bytes_dense for layer in self.layers)

    @property
    def weight_bytes_stored(self) -> int:
        return sum(layer.bytes_stored for layer in self.layers)


def c_paths(path: str | pathlib.Path, name: str | None = None) -> tuple[pathlib.Path, pathlib.Path, str]:
    """``(header, source, name)`` for ``path``: ``DIR/NAME.c`` or ``.h`` (name: the stem), or a
    folder (name: ``policy`` unless given)."""
    location = c_location(path)
    if location is None:
        raise ValueError(f"C export to {str(path)!r}: accepted: a .c or .h path, or a folder")
    folder, default = location
    name = check_name(default if name is None else name)
    return folder / f"{name}.h", folder / f"{name}.c", name


def _check_action_space(model: BaseAlgorithm) -> None:
    action = model.action_space
    if not isinstance(action, spaces.Box) or len(action.shape) != 1:
        raise ValueError(f"C export: action space {action}: accepted: a 1-D Box")
    if not finite_box(action):
        raise ValueError(f"C export: action space {action}: accepted: finite bounds (SB3 rescales to them)")


def _normalize_op(vec_normalize: Any, obs_dim: int) -> Normalize | None:
    if vec_normalize is None or not getattr(vec_normalize, "norm_obs", False):
        return None
    rms = getattr(vec_normalize, "obs_rms", None)
    if rms is None or not hasattr(rms, "mean") or np.shape(rms.mean) != (obs_dim,):
        raise ValueError(
            f"C export: vec_normalize {type(vec_normalize).__name__}: accepted: a VecNormalize whose "
            f"observation statistics are one vector of {obs_dim} (no dict observations)"
        )
    std = np.sqrt(np.asarray(rms.var, np.float64) + float(vec_normalize.epsilon))
    return Normalize(np.asarray(rms.mean, np.float64), std, float(vec_normalize.clip_obs))


def _observations(model: BaseAlgorithm, normalize: Normalize | None, n: int) -> np.ndarray:
    """Observations of the observation space (``±3`` where unbounded); behind a VecNormalize,
    raw observations within 5 standard deviations of its mean."""
    if normalize is None:
        return _sample_observations(model, n)
    z = np.random.default_rng(0).uniform(-5.0, 5.0, (n, len(normalize.mean)))
    return (normalize.mean + z * normalize.std).astype(np.float32)


def _deploy_params(model: BaseAlgorithm) -> int | None:
    counts = getattr(model, "param_counts", None)
    if callable(counts):
        return int(counts()["deploy"])
    actor = getattr(model, "actor", None)
    return sum(p.numel() for p in actor.parameters()) if isinstance(actor, nn.Module) else None


def _refuse_foreign(paths: Sequence[pathlib.Path]) -> None:
    """A ``ValueError`` for an existing file that the C export did not write (no provenance comment
    on top): e.g. ``foo.h`` asked for, and the user's own ``foo.c`` beside it."""
    for path in paths:
        if not path.exists():
            continue
        try:
            with open(path, encoding="utf-8", errors="replace") as stream:
                head = stream.read(4096)
        except OSError:  # a folder, an unreadable file
            head = ""
        if not (head.startswith("/*\n") and f" * {GENERATED_MARK} " in head.split("*/", 1)[0]):
            raise ValueError(
                f"C export: {str(path)!r} exists and was not written by the C export (no sb3_ofexi provenance "
                f"comment on top): not overwritten; accepted: another path or name (e.g. name='{path.stem}_policy'), "
                "or move the file away first"
            )


def _write_files(files: dict[pathlib.Path, str]) -> None:
    """Each file to a temporary file in its folder (UTF-8), then renamed onto its path, an existing
    file first moved aside. On any failure (an exception of any kind, KeyboardInterrupt included)
    the files moved aside are put back, and no temporary file or folder this call created is left."""
    folder = next(iter(files)).parent
    missing = []  # folders to create, deepest first
    for parent in [folder, *folder.parents]:
        if parent.exists():
            break
        missing.append(parent)
    temporaries: dict[pathlib.Path, pathlib.Path] = {}
    aside: dict[pathlib.Path, pathlib.Path] = {}
    placed: list[pathlib.Path] = []
    done = False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            # not mkstemp: its files are private (0600); "x" creates with the user's umask
            temporaries[path] = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
            with open(temporaries[path], "x", encoding="utf-8") as stream:
                stream.write(text)
        for path, temporary in temporaries.items():
            if path.exists():
                old = path.parent / f".{path.name}.{uuid.uuid4().hex}.old"
                os.replace(path, old)
                aside[path] = old
            os.replace(temporary, path)
            placed.append(path)
        done = True
    except OSError as error:
        raise ValueError(
            f"C export: cannot write {', '.join(p.name for p in files)} in {str(folder)!r}: "
            f"{error.strerror or error}: accepted: a writable folder (created if missing)"
        ) from error
    finally:
        undo: list[Callable[..., object]] = [old.unlink for old in aside.values()]
        if not done:  # back to how the folder was
            undo = [*(path.unlink for path in placed), *(functools.partial(os.replace, o, p) for p, o in aside.items())]
            undo += [*(temporary.unlink for temporary in temporaries.values()), *(parent.rmdir for parent in missing)]
        for step in undo:
            with contextlib.suppress(OSError):
                step()


def _check_compiled(
    code: CCode, obs: np.ndarray, expected: np.ndarray, reference: np.ndarray | None, tolerance: float
) -> float:
    """``code`` compiled (:data:`~sb3_ofexi.common.c_build.CFLAGS`) in a temporary folder and run on
    ``obs``: its max |C - predict|. A ``RuntimeError`` when float32 C is beyond ``tolerance`` of
    ``expected`` (predict), or int8 C beyond it of its numpy ``reference``."""
    with tempfile.TemporaryDirectory(prefix="sb3_ofexi_c_check_") as tmp:
        source = pathlib.Path(tmp) / f"{code.name}.c"
        header, text = c_files(code, [f"{code.name}: being checked"])
        source.with_suffix(".h").write_text(header, encoding="utf-8")
        source.write_text(text, encoding="utf-8")
        policy = CPolicy(source, code.name)
        try:
            got = policy(obs)
        finally:
            policy.close()
    if reference is None:
        return check_against_predict(got, expected, obs, tolerance, "C export: the compiled C policy")
    # int8: the C must compute what the int8 reference computes; its distance to predict is int8's error
    against, hint = "its numpy reference", ": a bug of the exporter"
    check_against_predict(got, reference, obs, tolerance, "C export: the compiled int8 policy", against, hint)
    return float(np.abs(got - expected).max())


def export_c(
    model: BaseAlgorithm,
    path: str | pathlib.Path,
    *,
    name: str | None = None,
    dtype: str = "float32",
    sparse: str = "auto",
    vec_normalize: Any = None,
    check: bool | None = None,
    obs: np.ndarray | None = None,
    int8_max_error: float | None = None,
) -> CExport:
    """Write ``<name>.h`` and ``<name>.c``: the deterministic policy of ``model`` as C99.

    :param path: ``DIR/NAME.c`` (or ``.h``), or a folder (then ``name`` defaults to ``policy``)
    :param name: the C identifier of the policy (``<name>_act``, ``<name>_OBS_DIM``, ...)
    :param dtype: ``"float32"``, or ``"int8"``: weights quantised per output row,
        ``scale = max|w_row| / 127``; activations, biases and sums stay float
    :param sparse: ``"auto"``: a layer more than half zeros (the masked peers) is stored in
        compressed sparse rows if that takes fewer bytes; ``"never"`` / ``"always"`` force it
    :param vec_normalize: a ``VecNormalize`` whose observation normalisation (with its clipping)
        the C code applies first: ``<name>_act`` then takes raw observations
    :param check: compile the C (``$CC`` or ``cc``, :data:`~sb3_ofexi.common.c_build.CFLAGS`) and
        compare with ``model.predict(obs, deterministic=True)``: float32 to EXPORT_ATOL per unit
        of the largest action bound, int8 to its bound. Default: when a compiler exists (else
        a warning); ``True`` without a compiler is an error
    :param obs: raw observations ``(n, obs_dim)`` for the check and int8's error (default:
        :data:`CHECK_OBSERVATIONS` sampled from the observation space)
    :param int8_max_error: the largest max |int8 action - float action| accepted, per unit of
        the largest action bound (at least 1); default :data:`INT8_MAX_ERROR`
    :raises ValueError: unsupported model, module, space, name or path; an existing file there
        that the C export did not write; int8 beyond its bound
    :raises FileNotFoundError: ``check=True`` and no C compiler
    :raises RuntimeError: the compiled C does not reproduce ``predict`` (a NaN difference, or NaN / inf
        actions for finite observations, included)
    """
    header_path, source_path, name = c_paths(path, name)
    _check_options(dtype, sparse)
    if int8_max_error is not None and not int8_max_error > 0:
        raise ValueError(f"C export: int8_max_error={int8_max_error!r}: accepted: a number > 0")
    obs_dim = observation_dim(model, "C export")
    _check_action_space(model)
    normalize = _normalize_op(vec_normalize, obs_dim)
    _refuse_foreign([header_path, source_path])
    compiler = find_compiler()
    if check and compiler is None:
        need_compiler()  # the error that names what is missing
    if check is None:
        check = compiler is not None
        if not check:
            warnings.warn("No C compiler found ($CC, cc, gcc, clang): the C policy is written unchecked", stacklevel=2)

    module = deployed_policy(model)
    ir = policy_ir(module, obs_dim, normalize)
    code = generate_c(ir, name, dtype, sparse)
    if obs is None:
        obs = _observations(model, normalize, CHECK_OBSERVATIONS)
    obs = np.asarray(obs, dtype=np.float32)
    if obs.ndim not in (1, 2) or obs.shape[-1] != obs_dim or obs.size == 0:
        raise ValueError(f"C export: obs of shape {obs.shape}: accepted: (n, {obs_dim}) raw observations, n >= 1")
    obs = obs.reshape(-1, obs_dim)
    model_obs = vec_normalize.normalize_obs(obs) if normalize is not None else obs
    expected, _ = model.predict(model_obs, deterministic=True)
    expected = np.asarray(expected, np.float32).reshape(len(obs), -1)
    scale = _action_scale(model)
    tolerance = EXPORT_ATOL * scale
    reference = run_ir(ir, obs, "int8") if dtype == "int8" else None  # the measure when nothing is compiled
    check_error = _check_compiled(code, obs, expected, reference, tolerance) if check else None
    int8_error = bound = None
    if reference is not None:
        bound = (INT8_MAX_ERROR if int8_max_error is None else int8_max_error) * scale
        int8_error = check_error if check_error is not None else float(np.abs(reference - expected).max())
        if not int8_error <= bound:  # NaN is refused too
            raise ValueError(
                f"C export: int8 weights move the actions by up to {int8_error:.3g} on {len(obs)} observations "
                f"(> int8_max_error {bound:.3g}); accepted: dtype='float32', or a larger int8_max_error "
                f"(per unit of the largest action bound; now {bound / scale:g})"
            )

    float_tolerance = tolerance if check_error is not None and dtype == "float32" else None
    measures = (len(obs), check_error, float_tolerance, int8_error, bound)
    result = CExport(header_path, source_path, name, dtype, sparse, code.layers, module, ir, *measures)
    header, source = c_files(code, _provenance(model, result, code.notes))
    _write_files({header_path: header, source_path: source})
    return result


def _provenance(model: BaseAlgorithm, result: CExport, notes: list[str]) -> list[str]:
    """The comment on top of both files: the model, the ops, the sizes, the build, the measures."""
    name, ir, layers, action_space = result.name, result.ir, result.layers, model.action_space
    algorithm = type(model).__name__
    preset = getattr(model, "preset", None)
    if isinstance(preset, str):
        algorithm += f" (preset {preset!r})"
    deploy = _deploy_params(model)
    weights = sum(op.weight.size for op in ir.ops if isinstance(op, Linear))
    nonzero = sum(layer.nonzero for layer in layers)
    biases = sum(op.bias.size for op in ir.ops if isinstance(op, Linear))
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    low = ", ".join(f"{v:g}" for v in action_space.low)  # type: ignore[attr-defined]
    high = ", ".join(f"{v:g}" for v in action_space.high)  # type: ignore[attr-defined]
    act_dim = ir.widths()[-1] if ir.ops else ir.obs_dim
    measures = ["Check: not compiled at export (check=False or no C compiler)"]
    if result.check_error is not None:
        measures[0] = f"Check: max |C - predict(obs, deterministic=True)| = {result.check_error:.3g} on "
        measures[0] += f"{result.observations} observations" + (
            f" (tolerance {result.tolerance:.3g})" if result.tolerance is not None else ""
        )
    if result.int8_error is not None and result.int8_bound is not None:
        measures.append(
            f"int8: max action error against the float policy {result.int8_error:.3g} (bound {result.int8_bound:.3g})"
        )
    return [
        f"{name}: the deterministic policy of a {algorithm} model ({type(model.policy).__name__}),",
        "as model.predict(obs, deterministic=True) returns it, in C99 (no dynamic memory, <math.h> only).",
        f"{GENERATED_MARK} {__version__} on {date} (torch {th.__version__}).",
        "",
        f"Observation: {ir.obs_dim} float{'s' if ir.obs_dim != 1 else ''}"
        + (", raw: VecNormalize's normalisation is op 0" if ir.ops and isinstance(ir.ops[0], Normalize) else "")
        + f"; action: {act_dim} float{'s' if act_dim != 1 else ''} in [{low}] .. [{high}].",
        "Folded: BatchNorm / BatchRenorm (evaluation statistics) into the Linear beside it, the thetas and the",
        "DenseNet's diagonal V into the weights; pruned units are gone. Ops:",
        *(f"  {note}" for note in notes),
        f"Deploy parameters: {deploy:,} (the model's count); exported: {weights:,} weights ({nonzero:,} nonzero)"
        f" and {biases:,} biases."
        if deploy is not None
        else f"Exported: {weights:,} weights ({nonzero:,} nonzero) and {biases:,} biases.",
        f"Weight bytes: {result.weight_bytes_dense:,} as dense float32, {result.weight_bytes_stored:,} as stored "
        f"({result.dtype}, sparse={result.sparse!r};"
        " int8 scales, CSR indices and padding included).",
        f"Build: cc {' '.join(CFLAGS)} -c {name}.c (link with -lm). Do not use -ffast-math: the sums are",
        "meant to be rounded in the order written; -ffp-contract=off keeps the compiler (clang by default) from",
        "contracting a * b + c into an FMA, which moves the last bits.",
        *measures,
    ]
