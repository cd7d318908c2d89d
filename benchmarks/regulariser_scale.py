"""Per layer, how hard each regulariser convention pushes a theta towards 0 (docs/COMPLEXITY.md).

At all thetas = 1 (the start of the learning phase), prints per layer the theta-gradient of
``C`` under ``regulariser="autograd"`` (the exact gradient) and ``regulariser="paper"`` (the
coefficients of eqs. 28, 29, 32, with the critics' first layers in eq. 28's sum), their
ratio, and eq. (28) exactly as printed (its sum over X_o minus pi is empty without a V network).
"""

from __future__ import annotations

import argparse

from sb3_ofexi import SAC_OFEXi


def _gate_gradients(model: SAC_OFEXi, mode: str) -> dict[str, float]:
    policy = model.policy
    gates = {f"phi_o {i + 1}": g for i, g in enumerate(policy.ofe.phi_o.gates)}
    gates.update({f"phi_oa {i + 1}": g for i, g in enumerate(policy.ofe.phi_oa.gates)})
    for g in gates.values():
        g.theta.grad = None
    policy.ofe_complexity(model.config.rho).regulariser(mode).backward()
    grads = {name: float(g.theta.grad[0]) for name, g in gates.items()}
    d_z_o, d_z_oa = policy.feature_widths()
    for name, net, d_in in [("actor", policy.actor.net, d_z_o), ("critic 1", policy.critic.q_networks[0], d_z_oa)]:
        for g in net.gates:
            g.theta.grad = None
        net.regulariser(d_in, mode).backward()
        grads.update({f"{name} {i + 1}": float(g.theta.grad[0]) for i, g in enumerate(net.gates)})
    return grads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--preset", default="prune-b")
    parser.add_argument("--ofe-layers", type=int, default=6)
    args = parser.parse_args()
    model = SAC_OFEXi(
        "MlpPolicy", args.env, preset=args.preset, ofe_layers=args.ofe_layers, buffer_size=1, device="cpu"
    )
    autograd, paper = _gate_gradients(model, "autograd"), _gate_gradients(model, "paper")
    rho, policy = model.config.rho, model.policy
    n_q = sum(q.units[0] for q in policy.critic.q_networks)
    print(f"{args.env}, {args.preset} sizes, all thetas = 1, rho = {rho}")
    print("| layer | autograd | paper | autograd / paper | eq. (28) as printed |")
    print("|---|---|---|---|---|")
    for name in autograd:
        printed = f"{paper[name] - rho * n_q:.0f}" if name.startswith("phi_o ") else ""
        print(f"| {name} | {autograd[name]:.0f} | {paper[name]:.0f} | {autograd[name] / paper[name]:.2f} | {printed} |")


if __name__ == "__main__":
    main()
