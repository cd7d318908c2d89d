"""Where the time of one SAC_OFEXi gradient step goes, eager and compiled.

For ``ofe`` and ``prune-b`` sizes (thetas frozen), eager and compiled, and stock SB3 SAC
256x2, runs ``train()`` under ``torch.profiler`` and splits the
self time of every operation into: matrix multiplies, the other tensor kernels (inductor's
fused kernels when compiled), the optimizer steps, and the rest (autograd engine, dynamo's
cache lookup, compiled-graph wrappers). Wall-clock ms per step come from an unprofiled run;
the Python interpreter between operations shows only there (wall minus profiled time,
roughly: the profiler itself adds a little to every operation). On CUDA the parts are host
time (launching kernels), and the GPU's own kernel time per step is printed beside them.
"""

from __future__ import annotations

import time
from typing import Any

from stable_baselines3 import SAC
from torch.profiler import ProfilerActivity, profile

from benchmarks.common import BATCH, ENV, filled_model, script_main, set_phase, sync
from sb3_ofexi.common.step import compiler_available

MATMUL = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")
PARTS = (
    "matrix multiplies",
    "other tensor kernels",
    "optimizer, Polyak, projections",
    "autograd engine, dynamo, wrappers",
)


def _split(prof: Any, steps: int) -> dict[str, float]:
    """ms per step of each part, from the profiler's self CPU times."""
    parts = dict.fromkeys(PARTS, 0.0)
    total = 0.0
    for event in prof.key_averages():
        ms = event.self_cpu_time_total / 1e3 / steps
        total += ms
        key = event.key
        if key in MATMUL or (key.startswith("extern_kernels.") and "mm" in key):
            parts["matrix multiplies"] += ms
        elif key.startswith("Optimizer.") or key.startswith("aten::_fused_adam") or key.startswith("aten::_foreach"):
            parts["optimizer, Polyak, projections"] += ms
        elif key.startswith("aten::") or key.startswith("## Call CompiledFxGraph") or key.startswith("cpp_fused"):
            parts["other tensor kernels"] += ms
        else:
            parts["autograd engine, dynamo, wrappers"] += ms
    parts["profiled total"] = total
    return parts


def measure(quick: bool = True, device: str = "cpu") -> dict[str, float]:
    steps = 10 if quick else 50
    variants = [False]
    if compiler_available(device.split(":")[0])[0]:
        variants.append(True)
    else:
        print(f"compiled variant skipped: {compiler_available(device.split(':')[0])[1]}")
    results: dict[str, float] = {}
    runs: list[tuple[str, Any]] = [("SB3 SAC 256x2", None)]
    runs += [
        (f"{preset} {'compiled' if c else 'eager'}", (preset, progress, c))
        for preset, progress in (("ofe", 0.5), ("prune-b", 0.1))
        for c in variants
    ]
    for name, config in runs:
        if config is None:  # the reference: stock SB3 SAC, same env and batch
            model = SAC(
                "MlpPolicy", ENV, policy_kwargs=dict(net_arch=[256, 256]), learning_starts=1000, seed=0, device=device
            )
            model.learn(1000)
            counts, phase = sum(p.numel() for p in model.policy.parameters()), "-"
        else:
            preset, progress, compiled = config
            model = filled_model(preset=preset, compile_step=compiled, device=device)
            set_phase(model, progress)
            counts, phase = model.param_counts()["train"], model.xi_phase
        model.train(5, BATCH)  # warm-up (and the build when compiled; on CUDA the capture after 3 steps)
        sync(device)
        start = time.perf_counter()
        model.train(steps, BATCH)
        sync(device)
        wall = (time.perf_counter() - start) / steps * 1e3
        cuda = device.startswith("cuda")
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities) as prof:
            model.train(steps, BATCH)
            sync(device)
        parts = _split(prof, steps)
        print(
            f"{name} ({counts:,} parameters, {phase}), batch {BATCH}: {wall:.2f} ms/step unprofiled, "
            f"{parts['profiled total']:.2f} ms in profiled operations (host)"
        )
        if cuda:  # what the GPU itself spends: the floor a launch-free step approaches
            kernels = (
                sum(
                    getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0))
                    for e in prof.key_averages()
                )
                / 1e3
                / steps
            )
            print(f"  GPU kernel time {kernels:.3f} ms/step")
            results[f"profile_ms/{name}/gpu kernels"] = kernels
        for part in PARTS:
            share = parts[part] / parts["profiled total"]
            print(f"  {part:40s} {parts[part]:7.2f} ms  ({share:5.1%})")
            results[f"profile_ms/{name}/{part}"] = parts[part]
        results[f"profile_ms/{name}/wall"] = wall
        del model
    return results


def main() -> None:
    script_main(measure, __doc__)


if __name__ == "__main__":
    main()
