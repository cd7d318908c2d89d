"""The compiled gradient step (``compile_step=``): building, caching and rebuilding it.

A SAC_OFEXi gradient step is three backward passes (OFE, critic, actor) and four Adam
steps in a fixed order (Algorithm 1). ``torch.compile`` cannot put a ``backward()`` and an
optimizer step in one graph (dynamo breaks the graph at both), so what is compiled are
the step's **pieces**: each forward + loss, whose backward AOTAutograd compiles with it.
The eager step calls the same pieces uncompiled, so both paths compute the same thing
(tests/test_compiled_step.py checks it to float tolerance).

A compiled piece is specialised to the shapes it was built for. A prune that changes a
shape makes the step be rebuilt (counted in ``time/step_rebuilds``); every build gets
fresh copies of the pieces' code objects, because dynamo keeps its cache on the code
object: without the copy, rebuilds would pile up in one shared cache until dynamo's
recompile limit silently sends the step back to eager.
"""

from __future__ import annotations

import functools
import shutil
import types
from collections.abc import Callable
from typing import Any

import torch as th

#: accepted values of ``compile_step``
COMPILE_STEP = (True, False, "auto")


def check_compile_step(value: Any) -> bool | str:
    if isinstance(value, bool) or value == "auto":
        return value
    raise ValueError(f"compile_step={value!r} is invalid: accepted: True, False or 'auto'")


@functools.lru_cache(maxsize=None)
def compiler_available(device_type: str) -> tuple[bool, str]:
    """Whether ``torch.compile`` (inductor) can build kernels for ``device_type`` here, and why not."""
    if not hasattr(th, "compile"):
        return False, f"torch {th.__version__} has no torch.compile"
    if device_type == "cpu":
        compiler = next((c for c in ("g++", "c++", "clang++") if shutil.which(c)), None)
        if compiler is None:
            return False, "inductor's CPU backend needs a C++ compiler (g++ or clang++), none was found"
    elif device_type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False, "inductor's CUDA backend needs triton, which is not installed"
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
    ``"auto"``: on CPU, when no prune can change the shapes (theta phases "frozen" and
    "rounded", and the OFE baselines), at least :data:`AUTO_MIN_STEPS` env steps remain in
    that phase and the networks have at most :data:`AUTO_MAX_PARAMS` train parameters.
    While thetas learn, a prune every ``prune_freq`` steps would rebuild the step each time,
    and a rebuild costs more than the compiled steps between two prunes save. CUDA stays
    eager under ``"auto"``: not measured yet.
    """
    if setting is False:
        return False
    ok, why = compiler_available(device.type)
    if setting is True:
        if not ok:
            raise RuntimeError(f"compile_step=True, but the step cannot be compiled here: {why}")
        return True
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
