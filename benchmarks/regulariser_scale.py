"""How much harder autograd's complexity gradient pushes each layer than the paper's eqs. (28), (29), (32).

At all thetas = 1, prints per layer: autograd's dC/dtheta, the paper's coefficient
-log(gamma)/nu, and their ratio (docs/COMPLEXITY.md explains the difference).
"""

from __future__ import annotations

import argparse

import torch as th

from sb3_ofexi import SAC_OFEXi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--preset", default="prune-b")
    parser.add_argument("--ofe-layers", type=int, default=6)
    args = parser.parse_args()
    model = SAC_OFEXi("MlpPolicy", args.env, preset=args.preset, ofe_layers=args.ofe_layers, buffer_size=1,
                      device="cpu")  # fmt: skip
    policy, rho = model.policy, model.rho
    ofe = policy.ofe
    policy.ofe_complexity(rho).total.backward()
    d_o, d_a = ofe.obs_dim, ofe.action_dim
    n_o = [g.n_units for g in ofe.phi_o.gates]
    n_oa = [g.n_units for g in ofe.phi_oa.gates]
    n_pi = policy.actor.net.units[0]
    L_o, L_oa = len(n_o), len(n_oa)
    print(f"{args.env}, {args.preset} sizes, all thetas = 1, rho = {rho}")
    print(f"{'layer':12s} {'autograd':>10s} {'paper':>10s} {'ratio':>6s}")
    for l in range(1, L_o + 1):
        paper = (1 + rho) * d_o + sum(n_o[: l - 1]) + L_o - l + rho * L_oa + 3 + n_pi  # eq. (28)
        grad = float(ofe.phi_o.gates[l - 1].theta.grad[0])
        print(f"{'phi_o ' + str(l):12s} {grad:10.0f} {paper:10.0f} {grad / paper:6.2f}")
    n_q = sum(q.units[0] for q in policy.critic.q_networks)
    for l in range(1, L_oa + 1):
        paper = rho * (2 * d_o + d_a + sum(n_o) + sum(n_oa[: l - 1]) + L_oa - l + 3 + n_q)  # eq. (29)
        grad = float(ofe.phi_oa.gates[l - 1].theta.grad[0])
        print(f"{'phi_oa ' + str(l):12s} {grad:10.0f} {paper:10.0f} {grad / paper:6.2f}")
    d_z_o, d_z_oa = policy.feature_widths()
    for name, net, d_in in [("actor", policy.actor.net, d_z_o), ("critic 1", policy.critic.q_networks[0], d_z_oa)]:
        norms = [th.tensor(float(n), requires_grad=True) for n in net.units]
        from sb3_ofexi.complexity import mlp_complexity

        mlp_complexity(float(d_in), norms, net.out_features).backward()
        units = net.units
        for l, n in enumerate(norms):
            if l == 0:
                paper = 1 + float(d_in)  # eq. (32), first layer
            elif l == len(units) - 1:
                paper = net.out_features + 1 + units[l - 1]  # eq. (32), last layer
            else:
                paper = 1 + units[l - 1]
            grad = float(n.grad)
            print(f"{name + ' ' + str(l + 1):12s} {grad:10.0f} {paper:10.0f} {grad / paper:6.2f}")


if __name__ == "__main__":
    main()
