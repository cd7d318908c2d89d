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
import gc
import shutil
import types
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, cast

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
#: networks is bound by matrix multiplies, which compiling does not reduce (an earlier P5 run:
#: ~1.0 at ``prune-b`` sizes, 3.9M; the latest: 0.88-0.91 there, 0.92 at ``ofe``'s 536k, so
#: the limit awaits a quieter re-measurement: docs/BENCHMARKS.md, after the P7 notes).
AUTO_MAX_PARAMS = 1_000_000


def use_compiled_step(
    setting: bool | str, device: th.device, shapes_may_change: bool, steps_left: int, train_params: int
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
        and not shapes_may_change
        and steps_left >= AUTO_MIN_STEPS
        and train_params <= AUTO_MAX_PARAMS
    )


def _fresh(function: Callable[..., Any]) -> Callable[..., Any]:
    """A copy of ``function`` with its own code object (so its own dynamo cache)."""
    copy = types.FunctionType(
        function.__code__.replace(),
        function.__globals__,
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    return copy


#: compile options of a piece
COMPILE_OPTIONS: dict[str, Any] = {
    # Bernoulli gates and the actor's noise draw from torch's generator as in eager mode, so a
    # seeded run is reproducible and comparable either way
    "fallback_random": True,
    # the signature (shapes, theta phase) decides rebuilds; dynamo's guards on every module
    # attribute cost ~0.2 ms per call and would only repeat it
    "guard_filter_fn": th.compiler.skip_guard_on_all_nn_modules_unsafe,
}

Pieces = TypeVar("Pieces", bound=tuple)


class StepRunner(Generic[Pieces]):
    """How an algorithm's gradient step runs: eagerly, with compiled pieces (CPU), or captured as
    one CUDA graph (CUDA); rebuilt when the shapes, the theta phase or the setting change.

    :param pieces: a NamedTuple of pure tensor functions of (policy, tensors, settings), no
        optimizer call and no module-mode change inside: the step's forward + loss parts. The
        step calls them through :attr:`pieces`, the same functions compiled or not.
    :param optimizers: every optimizer the step steps (a CUDA graph needs them capturable)
    """

    def __init__(self, pieces: Pieces, optimizers: list[th.optim.Optimizer], device: th.device) -> None:
        self.eager_pieces = pieces
        self.pieces: Pieces = pieces
        self.optimizers = optimizers
        self.device = device
        #: what the current pieces are specialised to (None: nothing built yet)
        self.signature: tuple | None = None
        self.compiled = False
        #: on CUDA with a compiled step: the step is captured as one CUDA graph
        self.graphed = False
        self.graph: GraphedStep | None = None
        #: times the step was compiled or captured (logged as time/step_rebuilds, minus the first)
        self.builds = 0

    def prepare(
        self,
        setting: bool | str,
        signature: tuple,
        *,
        use_sde: bool,
        shapes_may_change: bool,
        steps_left: Callable[[], int],
        train_params: Callable[[], int],
        graph_blocker: str = "",
    ) -> None:
        """Build the pieces for ``signature`` (the setting, theta phase, device, shape version)
        unless they are built already; compiled or eager as :func:`use_compiled_step` decides
        (``steps_left`` and ``train_params`` are asked only then: train() calls this every time).
        ``graph_blocker``: why the step cannot be one CUDA graph ("": it can).

        ``signature`` must cover every module state a piece reads: module guards are dropped, and
        the pieces are called with fixed training modes.
        """
        signature = (setting, graph_blocker, *signature)
        if self.signature == signature:
            return
        compiled = not use_sde and use_compiled_step(  # gSDE's noise is state outside a graph
            setting, self.device, shapes_may_change, steps_left=steps_left(), train_params=train_params()
        )
        # on CUDA the whole eager step is captured as one CUDA graph instead (GraphedStep)
        graphed = compiled and self.device.type == "cuda"
        why = (graph_blocker or graph_unsupported(self.optimizers)) if graphed else ""
        if why and setting is True:
            raise RuntimeError(f"compile_step=True, but the step cannot be captured as a CUDA graph: {why}")
        if why:  # "auto": eager
            graphed = compiled = False
        self.graph = None
        self.compiled = compiled and not graphed
        self.pieces = self.eager_pieces
        if self.compiled:
            functions = (th.compile(_fresh(f), dynamic=False, options=COMPILE_OPTIONS) for f in self.eager_pieces)
            self.pieces = cast(Any, type(self.eager_pieces))(*functions)  # the same NamedTuple
        self.graphed, self.signature = graphed, signature
        self.builds += int(compiled)

    def run(
        self,
        step: Callable[..., dict[str, th.Tensor]],
        batch: dict[str, th.Tensor],
        update_target: bool,
        target_in_graph: bool,
    ) -> dict[str, th.Tensor]:
        """``step(batch, update_target)``: eagerly (through :attr:`pieces`), or as the CUDA graph of
        ``step(batch, target_in_graph)`` (a graph's outputs are cloned: the next replay overwrites them)."""
        if not self.graphed:
            return step(batch, update_target)
        graph = self.graph
        same_step = graph is not None and graph.signature == self.signature
        if not same_step or not graph.fits(batch) or graph.baked_lrs != graph.float_lrs():  # type: ignore[union-attr]
            # recaptured for new pieces, new minibatch shapes, or a learning rate the capture baked in (SGD's)
            self.graph = None
            self.builds += int(same_step)  # new pieces were counted by prepare()

            def body(inputs: dict[str, th.Tensor]) -> dict[str, th.Tensor]:  # the flag by position: steps name it
                return step(inputs, target_in_graph)

            graph = self.graph = GraphedStep(body, self.optimizers, self.device, signature=self.signature)  # type: ignore[arg-type]
        return {k: v.clone() for k, v in graph(batch).items()}  # type: ignore[misc]

    def release(self) -> None:
        """Drop the compiled pieces and the CUDA graph before a surgery.

        A compiled piece keeps references into the last autograd graph it ran, and a graph that
        outlives a surgery keeps the pre-surgery shapes in the leaves' gradient accumulators
        (see :class:`~sb3_ofexi.common.surgery.Surgery`); the next backward would then fail.
        """
        self.graph = None
        if self.compiled:
            self.pieces, self.signature, self.compiled = self.eager_pieces, None, False
            gc.collect()  # the compiled functions sit in reference cycles

    def record(self, logger: Any) -> None:
        """``time/step_compiled``, ``time/step_graphed`` and ``time/step_rebuilds``."""
        logger.record("time/step_compiled", float(self.graphed or self.compiled))
        logger.record("time/step_graphed", float(self.graph is not None and self.graph.graph is not None))
        logger.record("time/step_rebuilds", max(0, self.builds - 1))


# --- the parts of a step every OFEXi algorithm shares ------------------------------------------
def descend(loss: th.Tensor, optimizer: th.optim.Optimizer, thetas: list[th.Tensor]) -> None:
    """One optimizer step on ``loss``, then ``thetas`` projected into [0, 1] (eq. 6; empty outside
    the learning phase): a projected gradient step, one clamp call per network."""
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if thetas:
        with th.no_grad():
            th._foreach_clamp_min_(thetas, 0.0)
            th._foreach_clamp_max_(thetas, 1.0)


@contextlib.contextmanager
def no_param_grad(*modules: th.nn.Module) -> Iterator[None]:
    """Let gradients flow *through* modules without computing any for their parameters."""
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def sample_flat(policy: Any, replay_buffer: Any, batch_size: int, env: Any = None) -> tuple[Any, th.Tensor, th.Tensor]:
    """One replay minibatch, with its observations and next observations flattened to what the
    networks read (dict observations concatenated)."""
    data = replay_buffer.sample(batch_size, env=env)
    obs = policy.obs_to_features_input(data.observations)
    return data, obs, policy.obs_to_features_input(data.next_observations)


def sample_step_batch(policy: Any, replay_buffer: Any, batch_size: int, env: Any = None) -> dict[str, th.Tensor]:
    """The two minibatches of one gradient step (OFE's and the RL networks', Algorithm 1 lines 7
    and 11), as flat tensors: what the step (eager or graphed) reads."""
    batch: dict[str, th.Tensor] = {}
    for prefix in ("ofe_", ""):
        data, batch[f"{prefix}obs"], batch[f"{prefix}next_obs"] = sample_flat(policy, replay_buffer, batch_size, env)
        batch[f"{prefix}actions"] = data.actions
    batch["rewards"], batch["dones"] = data.rewards, data.dones
    if getattr(data, "discounts", None) is not None:  # n-step buffers: per-sample discounts
        batch["discounts"] = data.discounts
    return batch


class TargetUpdate:
    """Polyak-average a critic's weights into its target and copy its thetas, one foreach call
    each (instead of SB3's per-tensor loop).

    A target's thetas are its critic's (not an average of them), so a prune, which removes the
    target's units with its critic's mask, never changes what the target computes. The pairs are
    found once: surgery edits tensors in place, so the Parameter objects stay the same.
    """

    def __init__(self, critic: th.nn.Module, critic_target: th.nn.Module) -> None:
        self.weights: list[th.Tensor] = []
        self.target_weights: list[th.Tensor] = []
        self.thetas: list[th.Tensor] = []
        self.target_thetas: list[th.Tensor] = []
        for (name, param), target in zip(critic.named_parameters(), critic_target.parameters()):
            source, dest = (
                (self.thetas, self.target_thetas) if name.endswith("theta") else (self.weights, self.target_weights)
            )
            source.append(param)
            dest.append(target)

    def __call__(self, tau: float) -> None:
        with th.no_grad():
            th._foreach_lerp_(self.target_weights, self.weights, tau)  # (1 - tau) target + tau weight
            if self.thetas:
                th._foreach_copy_(self.target_thetas, self.thetas)


def record_means(
    logger: Any, stats: dict[str, list[th.Tensor]], extra: dict[str, th.Tensor], device: th.device
) -> None:
    """Log the mean of each ``train/`` stat and each ``extra`` value with one host sync."""
    names = [f"train/{key}" for key, tensors in stats.items() if tensors]
    values = [th.stack(tensors).float().mean() for tensors in stats.values() if tensors]
    names += list(extra)
    values += list(extra.values())
    stacked = th.stack([th.as_tensor(v, dtype=th.float32, device=device).detach() for v in values])
    for name, value in zip(names, stacked.tolist()):  # the one host sync of train()
        logger.record(name, value)


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
