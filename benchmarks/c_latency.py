"""C export: batch-1 latency of the generated C policy / the same policy in onnxruntime (goal <= 0.5
for prune-b), and the weight bytes of each method as the C code stores them.

The prune-b policy is built at the widths prune-b reached on Hopper-v5 in docs/results: the
median, per layer, over the seeds' ``units`` in docs/results/Hopper-v5/prune-b/seed*/summary.json
(phi_o's blocks and the actor's hidden layers, after rounding and surgery; 30,000-step runs). A
fresh prune-b model is pruned straight to those widths (random units kept), so the weights are
untrained: latency and bytes depend on the shapes only.

C: compiled with -O2 (and -std=c99 -ffp-contract=off -Wall -Wextra -Werror), timed by a C loop that calls
``<name>_act`` N times on one observation (clock_gettime around the loop, one ctypes call per
loop). onnxruntime: the ONNX export of the same folded module, 1 thread (intra- and inter-op),
batch 1, ``session.run`` N times from Python. The two loops alternate over repetitions and the
ratio is the median of the per-repetition ratios; absolute times are for orientation only.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import tempfile
import time
from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import SAC

from benchmarks.common import ENV, report, script_main
from sb3_ofexi import PolyPruneSAC, SAC_OFEXi
from sb3_ofexi.common.c_build import CPolicy
from sb3_ofexi.common.c_export import CExport, export_c
from sb3_ofexi.common.export import export_policy
from sb3_ofexi.harness.measure import onnx_session

RESULTS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "results" / ENV / "prune-b"

# A C loop around <name>_act, built into the same library as the policy
_BENCH = """#define _POSIX_C_SOURCE 199309L
#include <time.h>

#include "{name}.h"

double {name}_bench(int calls, const float *obs, float *action);

double {name}_bench(int calls, const float *obs, float *action)
{{
    struct timespec start, end;
    int n;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (n = 0; n < calls; ++n) {name}_act(obs, action);
    clock_gettime(CLOCK_MONOTONIC, &end);
    return ((double)(end.tv_sec - start.tv_sec) * 1e9 + (double)(end.tv_nsec - start.tv_nsec)) / calls;
}}
"""


def prune_b_widths(results: pathlib.Path = RESULTS) -> dict[str, list[int]]:
    """Median over the seeds of prune-b's final widths on Hopper-v5 (phi_o blocks, actor)."""
    summaries = [json.loads(path.read_text()) for path in sorted(results.glob("seed*/summary.json"))]
    if not summaries:
        raise FileNotFoundError(f"No prune-b summary.json under {results}: the widths come from there")
    return {
        net: [round(statistics.median(widths)) for widths in zip(*(s["units"][net] for s in summaries))]
        for net in ("phi_o", "actor")
    }


def pruned_to(widths: dict[str, list[int]], seed: int = 0) -> SAC_OFEXi:
    """A fresh prune-b model on Hopper-v5 whose phi_o blocks and actor keep exactly ``widths``
    (random units), by the package's own surgery."""
    model = SAC_OFEXi("MlpPolicy", ENV, preset="prune-b", device="cpu", seed=seed)
    generator = th.Generator().manual_seed(seed)
    gates = model.policy.xi_layers()
    with th.no_grad():
        for net in ("phi_o", "actor"):
            for layer, keep in enumerate(widths[net]):
                gate = gates[f"{net}[{layer}]"]
                theta = th.zeros(gate.n_units)
                theta[th.randperm(gate.n_units, generator=generator)[:keep]] = 1.0
                gate.theta.copy_(theta)
    model.prune()
    reached = model.policy.architecture_kwargs()
    assert reached["ofe_units"]["phi_o"] == widths["phi_o"] and reached["net_arch"]["pi"] == widths["actor"], reached
    return model


class _Timed:
    """The C policy of ``result`` with a C timing loop: ``ns_per_call(calls)``."""

    def __init__(self, result: CExport, obs: np.ndarray) -> None:
        bench = result.source.parent / f"{result.name}_bench.c"
        bench.write_text(_BENCH.format(name=result.name))
        self.policy = CPolicy(result.source, result.name, extra_sources=[bench])
        import ctypes

        self._bench = getattr(self.policy.library, f"{result.name}_bench")
        pointer = ctypes.POINTER(ctypes.c_float)
        self._bench.argtypes = [ctypes.c_int, pointer, pointer]
        self._bench.restype = ctypes.c_double
        self.obs = np.ascontiguousarray(obs.reshape(-1), dtype=np.float32)
        self.action = np.zeros(self.policy.act_dim, np.float32)
        self._args = (self.obs.ctypes.data_as(pointer), self.action.ctypes.data_as(pointer))

    def ns_per_call(self, calls: int) -> float:
        return float(self._bench(calls, *self._args))


def _ort_ns_per_call(session: Any, feed: dict[str, np.ndarray], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        session.run(None, feed)
    return (time.perf_counter() - start) / calls * 1e9


def _ratio(
    timed: _Timed, session: Any, feed: dict[str, np.ndarray], reps: int, calls: int
) -> tuple[float, float, float]:
    """Median over interleaved repetitions of C / onnxruntime, and the median ns of each side."""
    timed.ns_per_call(calls)  # warm-up
    _ort_ns_per_call(session, feed, calls)
    c_ns, ort_ns = [], []
    for _ in range(reps):
        c_ns.append(timed.ns_per_call(calls))
        ort_ns.append(_ort_ns_per_call(session, feed, calls))
    ratios = [c / o for c, o in zip(c_ns, ort_ns)]
    return float(np.median(ratios)), float(np.median(c_ns)), float(np.median(ort_ns))


def _models() -> dict[str, tuple[Any, str]]:
    widths = prune_b_widths()
    prune_b = pruned_to(widths)
    ofe = SAC_OFEXi("MlpPolicy", ENV, preset="ofe", device="cpu", seed=0)
    sac = SAC("MlpPolicy", ENV, policy_kwargs=dict(net_arch=[256, 256]), device="cpu", seed=0)
    polyprune = PolyPruneSAC("MlpPolicy", ENV, policy_kwargs=dict(net_arch=[256, 256]), device="cpu", seed=0)
    # the actor sparsity polyprune reached in docs/results (final_sparsity 0.9, ERK), by magnitude
    polyprune.policy.weight_masks.update_("actor", polyprune.final_sparsity)
    return {
        "prune-b": (prune_b, f"phi_o {widths['phi_o']}, actor {widths['actor']}"),
        "ofe": (ofe, "phi_o 6 x 32, actor 256-256"),
        "sac": (sac, "actor 256-256"),
        "polyprune": (polyprune, f"actor 256-256, {polyprune.policy.weight_masks.sparsity('actor'):.0%} masked"),
    }


def measure(quick: bool = True) -> dict[str, float]:
    reps, calls = (7, 2000) if quick else (15, 10000)
    th.set_num_threads(1)
    rows, figures = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for method, (model, shape) in _models().items():
            folder = pathlib.Path(tmp) / method
            name = method.replace("-", "_")
            exports = {
                dtype: export_c(model, folder / dtype / f"{name}.c", dtype=dtype) for dtype in ("float32", "int8")
            }
            export_policy(model, folder / "policy.onnx")  # the same folded module, checked against predict
            session = onnx_session(folder / "policy.onnx")
            obs = np.random.default_rng(0).uniform(-1, 1, (1, model.observation_space.shape[0])).astype(np.float32)
            feed = {"obs": obs}
            timed = {dtype: _Timed(result, obs) for dtype, result in exports.items()}
            ratio, c_ns, ort_ns = _ratio(timed["float32"], session, feed, reps, calls)
            ratio8, c8_ns, _ = _ratio(timed["int8"], session, feed, reps, calls)
            f32, i8 = exports["float32"], exports["int8"]
            sparse = sum(layer.sparse for layer in f32.layers)
            figures[f"C_ort_{name}"] = ratio
            figures[f"C_int8_ort_{name}"] = ratio8
            rows.append(
                f"| {method} | {shape} | {c_ns / 1e3:.2f} | {c8_ns / 1e3:.2f} | {ort_ns / 1e3:.2f} | {ratio:.3f} | "
                f"{ratio8:.3f} | {f32.weight_bytes_dense:,} | {f32.weight_bytes_stored:,}"
                f"{f' ({sparse} CSR)' if sparse else ''} | {i8.weight_bytes_stored:,} | {f32.check_error:.1e} | "
                f"{i8.int8_error:.1e} |"
            )
            for policy in timed.values():
                policy.policy.close()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{ENV}, batch 1, {reps} interleaved repetitions of {calls} calls; C -O2, onnxruntime 1 thread")
    print(f"load average during the run: {load} (other processes share the cores)")
    print(
        "| method | widths | C float µs | C int8 µs | onnxruntime µs | C ÷ ORT | C int8 ÷ ORT | weight bytes, "
        "dense float32 | as stored, float32 | as stored, int8 | max err C float | max err int8 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    report("C_ort_prune_b", figures["C_ort_prune_b"], 0.5, "batch-1 latency, C float32 / onnxruntime, prune-b widths")
    return figures


def main() -> None:
    script_main(lambda quick, device: measure(quick), __doc__)  # a CPU latency figure


if __name__ == "__main__":
    main()
