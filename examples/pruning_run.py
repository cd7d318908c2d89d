"""Plain Python use: train SAC_OFEXi (prune-b) on Pendulum-v1 and show what pruning did.

Prints units per layer and deploy/train parameters before and after, the evaluation
return, and env-steps/s before and after the first prunes (measured in this run).
"""

from __future__ import annotations

import argparse
import time

import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_ofexi import SAC_OFEXi


class StepRate(BaseCallback):
    """env-steps/s over windows of ``window`` steps, with the deploy size at the window's end."""

    def __init__(self, window: int = 500) -> None:
        super().__init__()
        self.window = window
        self.rows: list[tuple[int, float, int]] = []

    def _on_training_start(self) -> None:
        self._t0, self._n0 = time.perf_counter(), self.num_timesteps

    def _on_step(self) -> bool:
        if self.num_timesteps - self._n0 >= self.window:
            now = time.perf_counter()
            deploy = self.model.param_counts()["deploy"]  # type: ignore[attr-defined]
            self.rows.append((self.num_timesteps, self.window / (now - self._t0), deploy))
            self._t0, self._n0 = now, self.num_timesteps
        return True


def describe(model: SAC_OFEXi, title: str) -> None:
    units, counts = model.unit_counts(), model.param_counts()
    print(f"--- {title}")
    for name in ("phi_o", "phi_oa", "actor"):
        print(f"  {name:7s} units per layer: {units[name]}")
    for i, critic in enumerate(units["critic"]):
        print(f"  critic{i + 1} units per layer: {critic}")
    print(f"  deploy params (phi_o + actor): {counts['deploy']:,}   train params: {counts['train']:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--timesteps", type=int, default=10_000)
    parser.add_argument("--export", help="also export the deployment policy (.onnx or .pt)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    th.set_num_threads(1)

    # Prune-B at a CPU-friendly starting size, as hyperparams/sac_ofexi_prune_b.yml's Pendulum-v1
    # entry: short runs need a larger theta learning rate than the paper's 3e-4, and on Pendulum
    # the OFENet's thetas get no task signal above their noise, so nu_OFE is lowered to keep it
    # from being pruned away (README, "Short runs"; docs/CALIBRATION.md, "The demo's entry").
    model = SAC_OFEXi(
        "MlpPolicy",
        args.env,
        preset="prune-b",
        ofe_layers=4,
        ofe_units=32,
        nu_ofe=2e-9,
        policy_kwargs=dict(net_arch=[128, 128]),
        learning_rate=1e-3,
        buffer_size=100_000,
        theta_lr=1e-2,
        learning_starts=1000,
        prune_freq=250,
        theta_diagnostics_freq=1000,
        seed=args.seed,
        device="cpu",
    )
    describe(model, f"SAC_OFEXi (prune-b) on {args.env}, before learn()")
    rate = StepRate()
    start = time.perf_counter()
    model.learn(args.timesteps, callback=rate)
    elapsed = time.perf_counter() - start
    describe(model, f"after {args.timesteps} steps ({elapsed:.0f} s)")
    logged = model.logger.name_to_value
    print(
        f"  theta schedule: phase '{model.xi_phase}' (frozen until {model.config.xi_start:.0%}, "
        f"rounded at {model.config.xi_round:.0%} of the budget); mean theta when last logged: "
        + ", ".join(f"{k.split('_')[-1]} {v:.2f}" for k, v in logged.items() if k.startswith("train/theta_mean"))
    )
    before = model.xi_record.get("before_rounding", {}).get("undecided", {})
    print(
        "  undecided thetas just before rounding (alive, below 0.9): "
        + ", ".join(f"{net} {100 * share:.0f}%" for net, share in before.items())
    )
    mean, std = evaluate_policy(model, model.get_env(), n_eval_episodes=10, deterministic=True)
    print(f"  evaluation return (10 episodes, deterministic): {mean:.1f} +/- {std:.1f}")
    print("  env-steps/s per 500-step window (deploy params at the window's end):")
    for step, sps, deploy in rate.rows:
        print(f"    step {step:6d}: {sps:6.1f} steps/s   deploy {deploy:,}")
    model.save("pruned_model")  # the pruned shapes are saved; SAC_OFEXi.load rebuilds them
    if args.export:
        model.export_policy(args.export)  # phi_o + actor, checked against predict (1e-4 per unit of action bound)
        print(f"  exported the deployment policy to {args.export}")


if __name__ == "__main__":
    main()
