"""P5, P6, P7: the compiled gradient step (``compile_step=True``) against eager and other SACs.

P5: train-step time compiled / eager, same model: ``ofe`` sizes; ``prune-b`` sizes with the
    thetas frozen and with the thetas learning; ``prune-b`` pruned to ~30% of its units and
    rounded (the phase after ``xi_round``).
P6: env-steps/s of SAC_OFEXi ``ofe`` / stock SB3 SAC 256x2 on Hopper-v5, one gradient step
    per env step, batch 256; compiled and eager.
P7: the same / SBX SAC 256x2 (JAX on its default backend: the CPU here, the GPU on a CUDA
    machine with jax[cuda]), same run; skipped with a message without ``sbx-rl``.

On CUDA, "compiled" is the step captured as one CUDA graph (``GraphedStep``).

Every ratio is measured interleaved in this one process; build times (the first compiled
step of each model: tracing, inductor, the C++ compiler) are reported separately.
"""

from __future__ import annotations

import time
from typing import Any

from stable_baselines3 import SAC

from benchmarks.common import BATCH, ENV, filled_model, interleaved_ratio, report, script_main, set_phase, sync
from benchmarks.train_step import prune_to
from sb3_ofexi import SAC_OFEXi
from sb3_ofexi.common.step import GraphedStep, compiler_available


def _step_ratio(
    preset: str, progress: float, steps: int, reps: int, device: str, keep: float | None = None
) -> dict[str, float]:
    """compiled / eager train() time of one model at ``progress`` of the theta schedule
    (``keep``: first pruned to about that fraction of the units, as benchmarks.train_step does)."""
    eager = filled_model(preset=preset, compile_step=False, device=device)
    compiled = filled_model(preset=preset, compile_step=True, device=device)
    for model in (eager, compiled):
        if keep is not None:
            prune_to(model, keep)
        set_phase(model, progress)
    eager.train(2, BATCH)
    sync(device)
    start = time.perf_counter()
    compiled.train(GraphedStep.WARMUP + 1, BATCH)  # builds the compiled pieces / captures the CUDA graph
    sync(device)
    build = time.perf_counter() - start
    ratio, t_compiled, t_eager = interleaved_ratio(
        lambda: compiled.train(steps, BATCH), lambda: eager.train(steps, BATCH), reps, device
    )
    return {
        "ratio": ratio,
        "ms_compiled": t_compiled / steps * 1e3,
        "ms_eager": t_eager / steps * 1e3,
        "build_s": build,
        "phase": compiled.xi_phase,
        "train_params": compiled.param_counts()["train"],
    }  # type: ignore[dict-item]


def _sbx_sac(start: int, device: str) -> Any | None:
    try:
        from sbx import SAC as SBXSAC
    except ImportError as error:
        print(f"P7 skipped: sbx-rl is not installed ({error}); pip install sbx-rl (JAX CPU) to measure it")
        return None
    import jax

    print(f"P7: SBX on JAX {jax.__version__}, backend {jax.default_backend()}")
    return SBXSAC("MlpPolicy", ENV, policy_kwargs=dict(net_arch=[256, 256]), learning_starts=start, seed=0)


def _throughput(quick: bool, device: str) -> dict[str, float]:
    """P6 and P7: env-steps/s ratios, all models advancing in interleaved chunks."""
    steps, reps = (100, 5) if quick else (1000, 7)
    start = 1000
    common = dict(learning_starts=start, batch_size=BATCH, seed=0, device=device)
    models: dict[str, Any] = {
        "sac": SAC("MlpPolicy", ENV, policy_kwargs=dict(net_arch=[256, 256]), **common),
        "ofe_eager": SAC_OFEXi("MlpPolicy", ENV, preset="ofe", ofe_pretrain_steps=0, compile_step=False, **common),
        "ofe_compiled": SAC_OFEXi("MlpPolicy", ENV, preset="ofe", ofe_pretrain_steps=0, compile_step=True, **common),
    }
    sbx = _sbx_sac(start, device)
    if sbx is not None:
        models["sbx"] = sbx
    for model in models.values():
        model.learn(start + 20)  # fill the buffer; builds the compiled step / jits SBX's update
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(reps):
        for name, model in models.items():
            sync(device)
            begin = time.perf_counter()
            model.learn(steps, reset_num_timesteps=False)
            sync(device)
            times[name].append(time.perf_counter() - begin)
    rate = {name: steps * reps / sum(t) for name, t in times.items()}
    out = {f"steps_per_s/{name}": value for name, value in rate.items()}
    for variant in ("compiled", "eager"):
        ofe = rate[f"ofe_{variant}"]
        suffix = "" if variant == "compiled" else "_eager"
        out[f"P6{suffix}"] = ofe / rate["sac"]
        report(
            f"P6{suffix}",
            out[f"P6{suffix}"],
            None,
            f"SAC_OFEXi ofe ({variant}) {ofe:.1f} vs SB3 SAC 256x2 {rate['sac']:.1f} env-steps/s",
        )
        if "sbx" in rate:
            out[f"P7{suffix}"] = ofe / rate["sbx"]
            report(
                f"P7{suffix}",
                out[f"P7{suffix}"],
                None,
                f"SAC_OFEXi ofe ({variant}) {ofe:.1f} vs SBX SAC 256x2 {rate['sbx']:.1f} env-steps/s",
            )
    return out


def measure(quick: bool = True, device: str = "cpu") -> dict[str, Any]:
    ok, why = compiler_available(th_device_type(device))
    if not ok:
        print(f"P5-P7 skipped: the step cannot be compiled here ({why})")
        return {}
    steps, reps = (5, 5) if quick else (20, 7)
    if th_device_type(device) == "cuda":  # a graphed step takes ~1 ms: more of them per timing
        steps *= 10
    results: dict[str, Any] = {}
    for key, preset, progress, keep in (
        ("ofe", "ofe", 0.5, None),
        ("prune_b_frozen", "prune-b", 0.1, None),
        ("prune_b_learning", "prune-b", 0.5, None),
        ("prune_b_pruned", "prune-b", 0.95, 0.3),
    ):
        r = _step_ratio(preset, progress, steps, reps, device, keep)
        results[f"P5_{key}"] = r["ratio"]
        results[f"P5_{key}_build_s"] = r["build_s"]
        results[f"P5_{key}_train_params"] = r["train_params"]
        report(
            f"P5_{key}",
            r["ratio"],
            0.5 if device == "cpu" else 0.2,
            f"{preset} ({r['phase']}, {r['train_params']:,} train params): compiled "
            f"{r['ms_compiled']:.1f} vs eager {r['ms_eager']:.1f} ms/step; "
            f"build {r['build_s']:.0f} s",
        )
    results.update(_throughput(quick, device))
    return results


def th_device_type(device: str) -> str:
    return device.split(":")[0]


def main() -> None:
    script_main(measure, __doc__)


if __name__ == "__main__":
    main()
