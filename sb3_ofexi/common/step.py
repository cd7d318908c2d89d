"""The compiled gradient step (``compile_step=``): building, caching and rebuilding it.

A SAC_OFEXi gradient step is three backward passes (OFE, critic, actor) and four Adam
steps in a fixed order (Algorithm 1). ``torch.compile`` cannot put a ``backward()`` and an
optimizer step in one graph (dynamo breaks the graph at both), so what is compiled are
the step's **pieces**: each forward + loss, whose backward AOTAutograd compiles with it.
The eager step calls the same pieces uncompiled, so both paths compute the same thing
(tests/test_compiled_step.py checks it to float tolerance).

On CUDA the whole eager step (all three backward passes and optimizer steps, the theta
projections and the Polyak update) is instead captured as one CUDA graph
(:class:`GraphedStep`: capturable Adam, static input buffers), since the step of networks this
small is bound by kernel launches on a GPU; it is recaptured on the same occasions as a CPU
rebuild.

A compiled piece is specialised to the shapes it was built for. A prune that changes a
shape makes the step be rebuilt (counted in ``time/step_rebuilds``); every build gets
fresh copies of the pieces' code objects, because dynamo keeps its cache on the code
object: without the copy, rebuilds would pile up in one shared cache until dynamo's
recompile limit silently sends the step back to eager.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch as th


def check_compile_step(value: Any) -> bool | str:
    if isinstance(value, bool) or value == "auto":
        return value
    raise ValueError(f"compile_step={value!r} is invalid: accepted: True, False or 'auto'")


@functools.cache
def compiler_available(device_type: str) -> tuple[bool, str]:
    """Whether ``torch.compile`` (inductor) can build kernels for ``device_type`` here, and why not."""
    if not hasattr(th, "compile"):
        return False, f"torch {th.__version__} has no torch.compile"
    if device_type == "cpu":
        compiler = next((c for c in ("g++", "c++", "clang++") if shutil.which(c)), None)
        if compiler is None:
            return False, "inductor's CPU backend needs a C++ compiler (g++ or clang++), none was found"
    elif device_type == "cuda":  # the whole step as a CUDA graph (GraphedStep): no compiler needed
        if not th.cuda.is_available():
            return False, "CUDA graphs need a CUDA device, and torch sees none"
    else:
        return False, f"no compiled step for device type {device_type!r} (accepted: cpu, cuda)"
    return True, ""


#: ``"auto"`` compiles only when at least this many env steps are left in a phase whose shapes
#: cannot change: a build takes 5-50 s on 2 CPU cores, and a compiled step saves a few ms at
#: best (docs/BENCHMARKS.md, P5), so shorter stretches (tests, demos) stay eager.
AUTO_MIN_STEPS = 50_000
#: ... and only for networks up to this many train parameters: on CPU a step of larger
#: networks is bound by matrix multiplies and memory traffic, which compiling does not
#: reduce (P5: ~0.9 at ``ofe`` sizes, 536k parameters; ~1.0 at ``prune-b`` sizes, 3.9M).
AUTO_MAX_PARAMS = 1_000_000


def use_compiled_step(
    setting: bool | str, device: th.device, phase_changes_shapes: bool, steps_left: int, train_params: int
) -> bool:
    """What ``compile_step`` means for the next stretch of training.

    ``True``: always (a RuntimeError if the compiler is missing). ``False``: never.
    ``"auto"``: on CUDA, always (the step is captured as one CUDA graph, :class:`GraphedStep`;
    a capture costs a few eager steps, so even a prune every ``prune_freq`` steps is paid back
    many times: docs/BENCHMARKS.md, P5 on CUDA). On CPU, when no prune can change the shapes
    (theta phases "frozen" and "rounded", and the OFE baselines), at least
    :data:`AUTO_MIN_STEPS` env steps remain in that phase and the networks have at most
    :data:`AUTO_MAX_PARAMS` train parameters: while thetas learn, a prune every
    ``prune_freq`` steps would rebuild the step each time, and an inductor build costs more
    than the compiled steps between two prunes save.
    """
    if setting is False:
        return False
    ok, why = compiler_available(device.type)
    if setting is True:
        if not ok:
            raise RuntimeError(f"compile_step=True, but the step cannot be compiled here: {why}")
        return True
    if device.type == "cuda":
        return ok
    return (
        ok
        and device.type == "cpu"
        and not phase_changes_shapes
        and steps_left >= AUTO_MIN_STEPS
        and train_params <= AUTO_MAX_PARAMS
    )


def _fresh(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` bound to the same object, with its own code object (so its own dynamo cache)."""
    func = method.__func__  # type: ignore[attr-defined]
    copy = types.FunctionType(
        func.__code__.replace(), func.__globals__, func.__name__, func.__defaults__, func.__closure__
    )
    copy.__kwdefaults__ = func.__kwdefaults__
    return types.MethodType(copy, method.__self__)  # type: ignore[attr-defined]


class StepPieces:
    """The pieces of one gradient step, eager or compiled for one set of shapes.

    :param pieces: name -> bound method (a pure tensor function: no optimizer call, no
        module-mode change inside)
    :param compiled: compile them (``torch.compile``, inductor, static shapes)
    :param signature: what the compiled pieces are specialised to: the policy's shape version
        (bumped by every surgery that changes a shape), the theta phase (gates' ``active`` and thetas' ``requires_grad``), the device
        and the setting. Module guards are dropped, so the signature must cover every module
        state a piece reads; the pieces are called with fixed training modes.
    """

    def __init__(self, pieces: dict[str, Callable[..., Any]], compiled: bool, signature: tuple) -> None:
        self.compiled = compiled
        self.signature = signature
        self.functions: dict[str, Callable[..., Any]] = {}
        for name, method in pieces.items():
            if compiled:
                options: dict[str, Any] = {
                    # Bernoulli gates and the actor's noise draw from torch's generator as in
                    # eager mode, so a seeded run is reproducible and comparable either way
                    "fallback_random": True,
                    # the signature (shapes, theta phase) decides rebuilds; dynamo's guards on
                    # every module attribute cost ~0.2 ms per call and would only repeat it
                    "guard_filter_fn": th.compiler.skip_guard_on_all_nn_modules_unsafe,
                }
                method = th.compile(_fresh(method), dynamic=False, options=options)
            self.functions[name] = method

    def __getattr__(self, name: str) -> Callable[..., Any]:
        try:
            return self.__dict__["functions"][name]
        except KeyError:
            raise AttributeError(name) from None


# --- CUDA: the whole step as one CUDA graph -----------------------------------------------------
def graph_unsupported(optimizers: list[th.optim.Optimizer]) -> str:
    """Why these optimizers cannot step inside a CUDA graph ('' when they can).

    An optimizer steps inside a graph when it keeps no host-side state: torch's optimizers
    with a ``capturable`` option (Adam, AdamW, ...: their step counts live on the device), and
    SGD, which keeps none.
    """
    for optimizer in optimizers:
        if "capturable" not in optimizer.defaults and type(optimizer) is not th.optim.SGD:
            return (
                f"{type(optimizer).__name__} cannot step inside a CUDA graph (accepted: torch optimizers with "
                "a 'capturable' option, such as Adam and AdamW, or SGD)"
            )
    return ""


def make_capturable(optimizer: th.optim.Optimizer, device: th.device) -> None:
    """Switch ``optimizer`` to graph-safe stepping, in place, keeping its state.

    ``capturable=True`` keeps the step counts on the device; the learning rate becomes a
    device tensor, so a schedule updates it (``fill_``) without a new capture. SGD needs
    neither. :func:`saveable_optimizer_state` turns both back for a saved model.
    """
    if "capturable" not in optimizer.defaults:
        return
    for group in optimizer.param_groups:
        group["capturable"] = True
        if not isinstance(group["lr"], th.Tensor):
            group["lr"] = th.tensor(float(group["lr"]), dtype=th.float32, device=device)
    for state in optimizer.state.values():
        step = state.get("step")
        if isinstance(step, th.Tensor) and step.device != device:
            state["step"] = step.to(device=device, dtype=th.float32)


def saveable_optimizer_state(state_dict: dict[str, Any]) -> dict[str, Any]:
    """An optimizer's ``state_dict`` as the eager step writes it: float learning rates,
    ``capturable=False`` and step counts on the CPU, so that a model trained under a CUDA graph
    saves the same file as one trained eagerly and loads anywhere. The live optimizer is not changed."""
    groups = state_dict.get("param_groups", [])
    if not any(g.get("capturable") or isinstance(g.get("lr"), th.Tensor) for g in groups):
        return state_dict
    state = {
        key: {k: (v.detach().cpu() if k == "step" and isinstance(v, th.Tensor) else v) for k, v in entry.items()}
        for key, entry in state_dict["state"].items()
    }
    groups = [
        {**g, "capturable": False, "lr": float(g["lr"]) if isinstance(g["lr"], th.Tensor) else g["lr"]} for g in groups
    ]
    return {**state_dict, "state": state, "param_groups": groups}


@contextlib.contextmanager
def _no_distribution_checks() -> Iterator[None]:
    """torch.distributions' argument checks read a tensor on the host (a sync, which a CUDA
    capture forbids); the eager step keeps them, the graph's kernels are the same without them."""
    before = th.distributions.Distribution._validate_args
    th.distributions.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        th.distributions.Distribution.set_default_validate_args(before)


class GraphedStep:
    """A whole gradient step replayed as one CUDA graph (``compile_step`` on CUDA).

    SB3's SAC step on a GPU is bound by launching hundreds of small kernels; a CUDA graph
    launches all of them at once. ``body`` is the eager step (the reference) itself: its first
    :attr:`WARMUP` calls run eagerly on a side stream (cuBLAS workspaces, optimizer state and
    autograd's streams are set up as CUDA's capture rules ask), then one call is captured and
    replayed. Capture runs nothing, so every call is exactly one real gradient step. Random
    draws (gates, the actor's noise) come from torch's CUDA generator, whose offset each replay
    advances as the eager step would.

    Inputs are copied into static buffers on every call; the outputs are the graph's own
    tensors, overwritten by the next replay (callers clone what they keep). The optimizers'
    learning rates must not change as Python floats after capture: :func:`make_capturable`
    turns them into tensors where the optimizer allows it, and :attr:`baked_lrs` lets the
    caller see when the others (SGD) changed.
    """

    WARMUP = 3

    def __init__(
        self,
        body: Callable[[dict[str, th.Tensor]], dict[str, th.Tensor]],
        optimizers: list[th.optim.Optimizer],
        device: th.device,
        signature: tuple,
    ) -> None:
        why = graph_unsupported(optimizers)
        if why:
            raise RuntimeError(why)
        for optimizer in optimizers:
            make_capturable(optimizer, device)
        self.body = body
        self.device = device
        self.signature = signature
        self.optimizers = optimizers
        self.baked_lrs = self.float_lrs()
        self.graph: th.cuda.CUDAGraph | None = None
        self.inputs: dict[str, th.Tensor] = {}
        self.outputs: dict[str, th.Tensor] = {}
        self.warmup_left = self.WARMUP
        self.stream = th.cuda.Stream(device=device)

    def float_lrs(self) -> tuple[float, ...]:
        """The learning rates a capture bakes in (those that are not tensors)."""
        return tuple(g["lr"] for o in self.optimizers for g in o.param_groups if not isinstance(g["lr"], th.Tensor))

    def fits(self, inputs: dict[str, th.Tensor]) -> bool:
        """Whether ``inputs`` have the names, shapes and dtypes the static buffers were made for."""
        return not self.inputs or (
            inputs.keys() == self.inputs.keys()
            and all(v.shape == self.inputs[k].shape and v.dtype == self.inputs[k].dtype for k, v in inputs.items())
        )

    def __call__(self, inputs: dict[str, th.Tensor]) -> dict[str, th.Tensor]:
        if not self.inputs:
            self.inputs = {k: th.empty_like(v, device=self.device) for k, v in inputs.items()}
        for name, value in inputs.items():
            self.inputs[name].copy_(value, non_blocking=True)
        if self.graph is None:
            current = th.cuda.current_stream(self.device)
            if self.warmup_left > 0:
                self.warmup_left -= 1
                self.stream.wait_stream(current)
                with th.cuda.stream(self.stream), _no_distribution_checks():
                    outputs = self.body(self.inputs)
                current.wait_stream(self.stream)
                return outputs
            graph = th.cuda.CUDAGraph()
            with _no_distribution_checks(), th.cuda.graph(graph):
                self.outputs = self.body(self.inputs)
            self.graph = graph
        self.graph.replay()
        return self.outputs
