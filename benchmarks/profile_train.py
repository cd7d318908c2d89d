"""Where the time of one SAC_OFEXi gradient step goes (prune-b sizes, thetas learning).

Times each part of ``train()`` separately on the same model, interleaved, and prints
milliseconds per gradient step and shares.
"""

from __future__ import annotations

import time

import numpy as np
import torch as th

from benchmarks.common import BATCH, filled_model, script_main, set_phase, sync
from sb3_ofexi.xi import xi_gates


def measure(quick: bool = True, device: str = "cpu") -> dict[str, float]:
    reps = 5 if quick else 20
    model = filled_model(preset="prune-b", theta_lr=0.01, device=device)
    set_phase(model, 0.5)
    policy, buffer = model.policy, model.replay_buffer
    data = buffer.sample(BATCH)
    obs = policy.obs_to_features_input(data.observations)
    next_obs = policy.obs_to_features_input(data.next_observations)

    def features() -> None:
        with th.no_grad():
            z_o, next_z_o = policy.ofe.features_o(th.cat([obs, next_obs])).chunk(2)
            policy.ofe.features_oa(z_o, data.actions)
            policy.ofe.features_oa(next_z_o, data.actions)

    def theta_work() -> None:
        policy.ofe_complexity(model.rho).total.backward()
        d_z_o, d_z_oa = policy.feature_widths()
        policy.actor.net.complexity(d_z_o).backward()
        for q in policy.critic.q_networks:
            q.complexity(d_z_oa).backward()
        for gate in xi_gates(policy):
            gate.project_()
        for p in policy.parameters():
            p.grad = None

    parts = {
        "replay sample (x2)": lambda: (buffer.sample(BATCH), buffer.sample(BATCH)),
        "OFE update (incl. its sample)": lambda: model._ofe_update(BATCH),
        "OFE features for RL (eval)": features,
        "theta work (complexity grads, projection)": theta_work,
        "whole train() step": lambda: model.train(1, BATCH),
    }
    times: dict[str, list[float]] = {k: [] for k in parts}
    for _ in range(reps):
        for name, fn in parts.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    medians = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    total = medians["whole train() step"]
    print(f"one gradient step at prune-b sizes ({model.param_counts()['train']:,} train params), batch {BATCH}:")
    for name, ms in medians.items():
        print(f"  {name:45s} {ms:7.2f} ms  ({ms / total:5.1%})")
    rest = total - sum(v for k, v in medians.items() if k != "whole train() step" and k != "replay sample (x2)")
    print(f"  {'SAC critic + actor + entropy updates (rest)':45s} {rest:7.2f} ms  ({rest / total:5.1%})")
    return {f"profile_ms/{k}": v for k, v in medians.items()}


def main() -> None:
    script_main(measure, __doc__)


if __name__ == "__main__":
    main()
