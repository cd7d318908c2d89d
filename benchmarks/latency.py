"""P4: batch-1 CPU latency of exported policies (onnxruntime), interleaved.

P4: Prune-B (pruned) / OFE-Big (goal <= 0.25); P4_sac: Prune-B / stock SB3 SAC 256x2 (goal <= 1.0).
"""

from __future__ import annotations

import pathlib
import tempfile
import time
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import torch as th
from stable_baselines3 import SAC
from torch import nn

from benchmarks.common import ENV, report, script_main
from benchmarks.train_step import prune_to
from sb3_ofexi import SAC_OFEXi
from sb3_ofexi.harness.measure import onnx_session


class StockSACDeploy(nn.Module):
    """Stock SB3 SAC actor, deterministic, with SB3's rescaling: the same graph shape as ours."""

    def __init__(self, model: SAC) -> None:
        super().__init__()
        self.latent_pi, self.mu = model.actor.latent_pi, model.actor.mu
        self.register_buffer("low", th.as_tensor(model.action_space.low))
        self.register_buffer("high", th.as_tensor(model.action_space.high))

    def forward(self, obs: th.Tensor) -> th.Tensor:
        action = th.tanh(self.mu(self.latent_pi(obs)))
        return self.low + 0.5 * (action + 1.0) * (self.high - self.low)


_session = onnx_session  # the same 1-thread session as every run's measurement


def _latency_ratio(a: ort.InferenceSession, b: ort.InferenceSession, obs: np.ndarray, reps: int, calls: int) -> float:
    feed = {"obs": obs}
    for session in (a, b):
        for _ in range(50):
            session.run(None, feed)
    ratios = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(calls):
            a.run(None, feed)
        mid = time.perf_counter()
        for _ in range(calls):
            b.run(None, feed)
        ratios.append((mid - start) / (time.perf_counter() - mid))
    return float(np.median(ratios))


def _latency(session: ort.InferenceSession, obs: np.ndarray, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        session.run(None, {"obs": obs})
    return (time.perf_counter() - start) / calls


def measure(quick: bool = True, pruned: SAC_OFEXi | None = None) -> dict[str, float]:
    reps, calls = (7, 300) if quick else (15, 2000)
    if pruned is None:  # a prune-b model pruned to 15% of its units, as a stand-in
        pruned = SAC_OFEXi("MlpPolicy", ENV, preset="prune-b", device="cpu", seed=0)
        prune_to(pruned, keep=0.15)
    big = SAC_OFEXi("MlpPolicy", ENV, preset="ofe-big", device="cpu", seed=0)
    sac = SAC("MlpPolicy", ENV, policy_kwargs=dict(net_arch=[256, 256]), device="cpu", seed=0)
    obs = np.zeros((1, pruned.observation_space.shape[0]), np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: pathlib.Path(tmp) / f"{name}.onnx" for name in ("pruned", "big", "sac")}
        pruned.export_policy(paths["pruned"])
        big.export_policy(paths["big"])
        th.onnx.export(
            StockSACDeploy(sac).eval(),
            (th.zeros(1, obs.shape[1]),),
            str(paths["sac"]),
            input_names=["obs"],
            output_names=["action"],
            dynamo=True,
        )
        sessions = {name: _session(path) for name, path in paths.items()}
        p4 = _latency_ratio(sessions["pruned"], sessions["big"], obs, reps, calls)
        p4_sac = _latency_ratio(sessions["pruned"], sessions["sac"], obs, reps, calls)
        for name, path in paths.items():  # batch 1 is bound by per-node overhead: show the graphs
            nodes = Counter(node.op_type for node in onnx.load(str(path)).graph.node)
            micros = _latency(sessions[name], obs, calls) * 1e6
            print(f"  {name:6s}: {sum(nodes.values()):3d} ONNX nodes {dict(nodes)}, {micros:.1f} us per call")
    deploy = pruned.param_counts()["deploy"]
    report(
        "P4",
        p4,
        0.25,
        f"batch-1 onnxruntime latency, prune-b ({deploy:,} deploy params) / ofe-big ({big.param_counts()['deploy']:,})",
    )
    sac_params = sum(p.numel() for p in sac.actor.parameters())
    report("P4_sac", p4_sac, 1.0, f"prune-b / stock SAC 256x2 actor ({sac_params:,} params)")
    return {"P4": p4, "P4_sac": p4_sac}


def main() -> None:
    script_main(lambda quick, device: measure(quick), __doc__)  # a CPU latency figure


if __name__ == "__main__":
    main()
