"""Calibrate the OFE side of the regulariser without RL (issue: paper fidelity; docs/CALIBRATION.md).

OFE thetas are driven only by L_pred + nu_OFE * C_OFE (eq. 33): no RL loss reaches them.
So the question "which theta-gradient convention and which L_pred scale make Table 2's
nu_OFE prune phi_o / phi_oa as much as the paper reports?" can be answered on a fixed
Hopper-v5 replay buffer, with OFEXiNet alone at the paper's sizes (128 units x 6 blocks).

Three steps, each resumable (a run's result file is written atomically when it ends; a
run in progress checkpoints every ``--checkpoint-every`` updates and continues from there)::

    python -m benchmarks.calibrate_ofe collect --out runs/calibration        # Hopper-v5 buffer
    python -m benchmarks.calibrate_ofe run --out runs/calibration --jobs 2   # the grid below
    python -m benchmarks.calibrate_ofe table                                 # Markdown table

What one run does (``--updates`` thetas-learning updates, default 30,000):
  * it starts from a warm-up of ``--warmup`` OFE updates (default 5,000, one per seed, shared
    by every combination) with thetas frozen at 1 (the paper fixes the thetas for its first
    200k steps, so OFENet is trained before they move),
  * then thetas learn at the paper's rate 3e-4 (Adam, projected into [0, 1]) under
    L_pred + lambda_OFE/2 ||M||^2 + nu_OFE * C_OFE, with a prune (theta < 0.1) every
    1,000 updates, as Algorithm 1 part IV does during training,
  * the RL networks' first-layer widths in C_pi,OFE and C_q,OFE are constants (eq. 33
    detaches them) at their preset sizes (512 = all thetas at 1): no RL runs here,
  * at the end thetas are rounded (the paper's last 20%) and the survivors counted.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any

import numpy as np

ENV = "Hopper-v5"
BUFFER = "hopper_buffer.npz"
RESULTS = "docs/calibration"  # small per-run JSON files, committed with docs/CALIBRATION.md
THETA_LR = 3e-4  # paper, section 5 (eta_OFE; thetas share the OFE optimizer)
PRUNE_EVERY = 1000
THETA_TOL = 0.1

# Paper Table 4 (Hopper-v2), from the text of the paper: phi_o / phi_oa sizes are not
# printed per block; see docs/CALIBRATION.md for what the paper gives.


def collect(out: pathlib.Path, sac_steps: int, random_steps: int, seed: int) -> pathlib.Path:
    """A Hopper-v5 buffer: ``sac_steps`` of stock SB3 SAC (10k random warm-up included), then random steps."""
    import gymnasium as gym
    import torch as th
    from stable_baselines3 import SAC

    th.set_num_threads(2)
    path = out / BUFFER
    if path.exists():
        print(f"{path} exists: nothing to do")
        return path
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model = SAC("MlpPolicy", ENV, learning_starts=10_000, buffer_size=sac_steps + 1, seed=seed, device="cpu")
    model.learn(sac_steps, progress_bar=False)
    buffer = model.replay_buffer
    n = buffer.size()
    obs = buffer.observations[:n, 0]
    actions = buffer.actions[:n, 0]
    next_obs = buffer.next_observations[:n, 0]
    print(f"SAC part: {n} transitions in {time.perf_counter() - start:.0f} s")
    env = gym.make(ENV)
    env.action_space.seed(seed + 1)
    o, _ = env.reset(seed=seed + 1)
    more_o, more_a, more_n = [], [], []
    for _ in range(random_steps):
        a = env.action_space.sample()
        o2, _, terminated, truncated, _ = env.step(a)
        more_o.append(o)
        more_a.append(a)
        more_n.append(o2)
        o = o2
        if terminated or truncated:
            o, _ = env.reset()
    obs = np.concatenate([obs, np.array(more_o, dtype=np.float32)])
    actions = np.concatenate([actions, np.array(more_a, dtype=np.float32)])
    next_obs = np.concatenate([next_obs, np.array(more_n, dtype=np.float32)])
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        observations=obs,
        actions=actions,
        next_observations=next_obs,
        sac_steps=sac_steps,
        random_steps=random_steps,
        seed=seed,
    )
    os.replace(tmp, path)
    print(
        f"wrote {path}: {len(obs)} transitions ({sac_steps} SAC incl. 10k random warm-up + {random_steps} random), "
        f"{time.perf_counter() - start:.0f} s"
    )
    return path


# --- one calibration run ----------------------------------------------------------------------
def grid(combos: list[str], presets: list[str], seeds: int) -> list[dict[str, Any]]:
    runs = []
    for preset in presets:
        for combo in combos:
            regulariser, pred_loss = combo.split("/")
            for seed in range(seeds):
                runs.append({"preset": preset, "regulariser": regulariser, "pred_loss": pred_loss, "seed": seed})
    return runs


def run_name(spec: dict[str, Any]) -> str:
    return f"{spec['preset']}_{spec['regulariser']}_{spec['pred_loss']}_seed{spec['seed']}"


def _make_ofe(d_o: int, d_a: int, units_o: list[int], units_oa: list[int]):
    from sb3_ofexi.common.ofenet import OFEXiNet

    return OFEXiNet(d_o, d_a, list(units_o), list(units_oa), use_xi=True)


def _make_optimizer(ofe, lambda_ofe: float):
    """Adam as SAC_OFEXi builds it for OFEXiNet: L2 as weight decay on W and V, thetas at THETA_LR."""
    import torch as th

    from sb3_ofexi.sac_ofexi.policies import l2_weights

    decay = l2_weights(ofe)  # W and V, as SACOFEXiPolicy's optimizer groups them
    ids = {id(p) for p in decay}
    thetas = [g.theta for g in ofe.phi_o.gates + ofe.phi_oa.gates]
    others = [p for n, p in ofe.named_parameters() if not n.endswith("theta") and id(p) not in ids]
    return th.optim.Adam(
        [
            {"params": decay, "weight_decay": lambda_ofe},
            {"params": others, "weight_decay": 0.0},
            {"params": thetas, "lr": THETA_LR, "weight_decay": 0.0},
        ],
        lr=3e-4,
    )


def _load_buffer(out_dir: pathlib.Path):
    import torch as th

    data = np.load(out_dir / BUFFER)
    # float32, as SAC_OFEXi feeds OFENet (Hopper's observation space is float64)
    return tuple(th.as_tensor(data[key]).float() for key in ("observations", "actions", "next_observations"))


def _save_atomic(obj: Any, path: pathlib.Path) -> None:
    import torch as th

    tmp = path.with_suffix(".tmp")
    th.save(obj, tmp)
    os.replace(tmp, path)


def warmup_run(seed: int, out: str, warmup: int) -> str:
    """OFENet trained with thetas frozen at 1 (shared by every combination of one seed).

    L_pred as eq. (8) (``sum``); Adam is invariant to the loss scale, so the ``mean`` runs would
    reach the same weights (up to Adam's epsilon); lambda_OFE is prune-b's 1e-6.
    """
    import torch as th

    th.set_num_threads(1)
    out_dir = pathlib.Path(out)
    path = out_dir / f"warmup_seed{seed}_{warmup}.pt"
    if path.exists():
        return str(path)
    obs, actions, next_obs = _load_buffer(out_dir)
    th.manual_seed(seed)
    ofe = _make_ofe(obs.shape[1], actions.shape[1], [128] * 6, [128] * 6)
    for gate in ofe.phi_o.gates + ofe.phi_oa.gates:
        gate.theta.requires_grad_(False)
    optimizer = _make_optimizer(ofe, 1e-6)
    generator = th.Generator().manual_seed(1000 + seed)
    ofe.train(True)
    for _ in range(warmup):
        index = th.randint(0, len(obs), (256,), generator=generator)
        loss = ofe.pred_loss(obs[index], actions[index], next_obs[index], reduction="sum")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    _save_atomic(
        {
            "ofe": ofe.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": th.get_rng_state(),
        },
        path,
    )
    return str(path)


def calibration_run(
    spec: dict[str, Any], out: str, results: str, warmup: int, updates: int, checkpoint_every: int
) -> dict:
    """From the seed's warm-up, thetas learn for ``updates`` OFE updates; resumable from ``NAME.ckpt``."""
    import torch as th

    from sb3_ofexi.common.surgery import Surgery
    from sb3_ofexi.sac_ofexi.presets import get_preset

    th.set_num_threads(1)
    out_dir = pathlib.Path(out)
    name = run_name(spec)
    result_path = pathlib.Path(results) / f"{name}.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    obs, actions, next_obs = _load_buffer(out_dir)
    d_o, d_a = obs.shape[1], actions.shape[1]
    preset = get_preset(spec["preset"])
    rl_width = float(preset["net_arch"][0])  # first hidden layer of actor and critics (thetas at 1)
    ckpt = out_dir / f"{name}.ckpt"
    resumed = ckpt.exists()
    state = th.load(ckpt if resumed else warmup_run(spec["seed"], out, warmup), weights_only=False)
    units_o, units_oa = state.get("units_o", [128] * 6), state.get("units_oa", [128] * 6)
    ofe = _make_ofe(d_o, d_a, units_o, units_oa)
    ofe.load_state_dict(state["ofe"])
    optimizer = _make_optimizer(ofe, preset["lambda_ofe"])
    optimizer.load_state_dict(state["optimizer"])
    optimizer.param_groups[0]["weight_decay"] = preset["lambda_ofe"]  # the warm-up used prune-b's
    generator = th.Generator()
    generator.set_state(state["generator"])
    th.set_rng_state(state["torch_rng"])
    step, history = state.get("step", 0), state.get("history", [])
    start = time.perf_counter()
    ofe.train(True)
    while step < updates:
        index = th.randint(0, len(obs), (256,), generator=generator)
        pred = ofe.pred_loss(obs[index], actions[index], next_obs[index], reduction=spec["pred_loss"])
        complexity = ofe_complexity_args(ofe, rl_width, preset["rho"])
        loss = pred + preset["nu_ofe"] * complexity.regulariser(spec["regulariser"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for gate in ofe.phi_o.gates + ofe.phi_oa.gates:
            gate.project_()
        step += 1
        pred_value = float(pred.detach())
        # no graph may outlive the step: a prune changes the thetas' shapes, and a live graph
        # would keep autograd's gradient accumulators of the old shapes
        del loss, pred, complexity
        if step % PRUNE_EVERY == 0:  # Algorithm 1, part IV
            surgery = Surgery()
            ofe.prune_(THETA_TOL, surgery)
            if surgery.changed:
                surgery.slice_optimizer_(optimizer)
            with th.no_grad():
                history.append(
                    {
                        "step": step,
                        "pred_loss_per_entry": pred_value / (d_o if spec["pred_loss"] == "sum" else 1),
                        "units_o": ofe.phi_o.units,
                        "units_oa": ofe.phi_oa.units,
                        "theta_o": [round(float(g.theta.mean()), 4) if g.n_units else None for g in ofe.phi_o.gates],
                        "theta_oa": [round(float(g.theta.mean()), 4) if g.n_units else None for g in ofe.phi_oa.gates],
                    }
                )
        if step % checkpoint_every == 0 and step < updates:
            _save_atomic(
                {
                    "ofe": ofe.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "units_o": ofe.phi_o.units,
                    "units_oa": ofe.phi_oa.units,
                    "generator": generator.get_state(),
                    "torch_rng": th.get_rng_state(),
                    "step": step,
                    "history": history,
                },
                ckpt,
            )
    # the paper's last phase: round every theta to 0/1, then remove the zeros
    before_round = {"phi_o": ofe.phi_o.units, "phi_oa": ofe.phi_oa.units}
    undecided = sum(int(((g.theta > THETA_TOL) & (g.theta < 0.9)).sum()) for g in ofe.phi_o.gates + ofe.phi_oa.gates)
    for gate in ofe.phi_o.gates + ofe.phi_oa.gates:
        gate.round_()
    ofe.prune_(THETA_TOL, Surgery())
    with th.no_grad():
        ofe.train(False)
        index = th.randint(0, len(obs), (4096,), generator=th.Generator().manual_seed(7))
        eval_mse = float(ofe.pred_loss(obs[index], actions[index], next_obs[index], reduction="mean"))
    result = {
        **spec,
        "warmup": warmup,
        "updates": updates,
        "theta_lr": THETA_LR,
        "rl_first_width": rl_width,
        "units_o": ofe.phi_o.units,
        "units_oa": ofe.phi_oa.units,
        "units_before_round": before_round,
        "undecided_before_round": undecided,
        "sum_o": sum(ofe.phi_o.units),
        "sum_oa": sum(ofe.phi_oa.units),
        "phi_o_params": sum(p.numel() for n, p in ofe.phi_o.named_parameters() if not n.endswith("theta")),
        "eval_mse_per_entry_after_round": eval_mse,
        "history": history,
        "resumed": resumed,
        "seconds_last_sitting": time.perf_counter() - start,
    }
    result_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, result_path)
    if ckpt.exists():
        ckpt.unlink()
    return result


def ofe_complexity_args(ofe, rl_width: float, rho: float):
    """C_OFE terms of this OFEXiNet with the actor's and both critics' first layers at ``rl_width``."""
    import torch as th

    from sb3_ofexi.common.complexity import ofe_complexity, theta_norm

    return ofe_complexity(
        ofe.obs_dim,
        ofe.action_dim,
        ofe.target_dim,
        [theta_norm(g.theta) for g in ofe.phi_o.gates],
        [theta_norm(g.theta) for g in ofe.phi_oa.gates],
        th.tensor(rl_width),
        [th.tensor(rl_width), th.tensor(rl_width)],
        rho,
    )


def run_grid(args: argparse.Namespace) -> None:
    specs = grid(args.combos.split(","), args.presets.split(","), args.seeds)
    todo = [s for s in specs if not (pathlib.Path(args.results) / f"{run_name(s)}.json").exists()]
    print(f"{len(specs)} runs, {len(specs) - len(todo)} done, {len(todo)} to do, {args.jobs} at a time", flush=True)
    call = (args.out, args.results, args.warmup, args.updates, args.checkpoint_every)
    # specs of one seed after another, so an interrupted grid has every combination's first seeds
    todo.sort(key=lambda s: (s["preset"] != "prune-b", s["seed"]))
    from sb3_ofexi.harness.sweep import die_with_parent

    with ProcessPoolExecutor(
        max_workers=args.jobs, mp_context=get_context("spawn"), initializer=die_with_parent
    ) as pool:
        seeds = sorted({s["seed"] for s in todo})
        for future in as_completed([pool.submit(warmup_run, seed, args.out, args.warmup) for seed in seeds]):
            print(f"warm-up ready: {future.result()}", flush=True)
        futures = {pool.submit(calibration_run, spec, *call): spec for spec in todo}
        for future in as_completed(futures):
            spec = futures[future]
            try:
                r = future.result()
                print(
                    f"done {run_name(spec)}: phi_o {r['units_o']} phi_oa {r['units_oa']} "
                    f"({r['seconds_last_sitting']:.0f} s)",
                    flush=True,
                )
            except Exception:  # one failing run must not stop the others
                print(f"FAILED {run_name(spec)}:\n{traceback.format_exc()}", flush=True)


def table(args: argparse.Namespace) -> str:
    results = [json.loads(p.read_text()) for p in sorted(pathlib.Path(args.results).glob("prune-*.json"))]
    if not results:
        raise SystemExit(f"no results in {args.results}")
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["preset"], r["regulariser"], r["pred_loss"]), []).append(r)
    lines = [
        "| preset | regulariser | pred_loss | seeds | phi_o units per block (mean) | sum phi_o | "
        "phi_oa units per block (mean) | sum phi_oa | phi_o params | undecided thetas before rounding | "
        "MSE after rounding |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (preset, reg, pred), group in sorted(groups.items()):
        o = np.mean([g["units_o"] for g in group], axis=0)
        oa = np.mean([g["units_oa"] for g in group], axis=0)
        so = [g["sum_o"] for g in group]
        soa = [g["sum_oa"] for g in group]
        lines.append(
            f"| {preset} | {reg} | {pred} | {len(group)} | {' '.join(f'{x:.0f}' for x in o)} | "
            f"{np.mean(so):.0f} ± {np.std(so):.0f} | {' '.join(f'{x:.0f}' for x in oa)} | "
            f"{np.mean(soa):.0f} ± {np.std(soa):.0f} | {np.mean([g['phi_o_params'] for g in group]) / 1e3:.1f}k | "
            f"{np.mean([g['undecided_before_round'] for g in group]):.0f} | "
            f"{np.mean([g['eval_mse_per_entry_after_round'] for g in group]):.4f} |"
        )
    text = "\n".join(lines)
    print(text)
    warmups = sorted(pathlib.Path(args.out).glob("warmup_seed*.pt"))
    if warmups:  # the reference: the same networks before any theta moved
        print(
            f"\nunpruned warm-up networks, MSE per entry on the same 4,096 transitions: "
            f"{', '.join(f'{reference_mse(p, args.out):.4f}' for p in warmups)}"
        )
    return text


def reference_mse(warmup: pathlib.Path, out: str) -> float:
    import torch as th

    obs, actions, next_obs = _load_buffer(pathlib.Path(out))
    state = th.load(warmup, weights_only=False)
    ofe = _make_ofe(obs.shape[1], actions.shape[1], [128] * 6, [128] * 6)
    ofe.load_state_dict(state["ofe"])
    ofe.train(False)
    index = th.randint(0, len(obs), (4096,), generator=th.Generator().manual_seed(7))
    with th.no_grad():
        return float(ofe.pred_loss(obs[index], actions[index], next_obs[index], reduction="mean"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("collect", help="make and save the Hopper-v5 buffer")
    c.add_argument("--out", default="runs/calibration")
    c.add_argument("--sac-steps", type=int, default=60_000)
    c.add_argument("--random-steps", type=int, default=50_000)
    c.add_argument("--seed", type=int, default=0)
    r = commands.add_parser("run", help="the calibration grid (skips finished runs, resumes unfinished ones)")
    r.add_argument("--out", default="runs/calibration", help="buffer, warm-ups and checkpoints (large)")
    r.add_argument("--results", default=RESULTS, help="one small JSON per finished run (committed)")
    r.add_argument(
        "--combos", default="paper/sum,paper/mean,autograd/sum,autograd/mean", help="regulariser/pred_loss pairs"
    )
    r.add_argument("--presets", default="prune-b")
    r.add_argument("--seeds", type=int, default=3)
    r.add_argument("--warmup", type=int, default=5_000)
    r.add_argument("--updates", type=int, default=30_000)
    r.add_argument("--checkpoint-every", type=int, default=2_000)
    r.add_argument("--jobs", type=int, default=2)
    t = commands.add_parser("table", help="print the Markdown table of finished runs")
    t.add_argument("--results", default=RESULTS)
    t.add_argument("--out", default="runs/calibration", help="where the warm-ups are (for the reference MSE)")
    args = parser.parse_args()
    if args.command == "collect":
        collect(pathlib.Path(args.out), args.sac_steps, args.random_steps, args.seed)
    elif args.command == "run":
        run_grid(args)
    else:
        table(args)


if __name__ == "__main__":
    main()
