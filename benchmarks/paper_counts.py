"""Our parameter counts against the paper's Table 4 (Hopper-v2, in thousands), in both conventions.

``python -m benchmarks.paper_counts``: builds SAC, SAC-Big (stock SB3), OFE and OFE-Big
(SAC_OFEXi presets) for Hopper-v5 (same d_o = 11, d_a = 3 as v2) and prints
``param_counts()`` (ours: train = phi_o + phi_oa + f_pred + actor + critics) and
``paper_param_counts()`` (train without f_pred, with SAC-v1's V network) next to Table 4.
"""

from __future__ import annotations

from stable_baselines3 import SAC

from sb3_ofexi import SAC_OFEXi
from sb3_ofexi.harness.runs import paper_param_counts, param_counts

#: Table 4 of the paper, Hopper-v2: (deploy, train) in thousands
TABLE4_HOPPER = {"sac": (71, 280), "sac-big": (1069, 4264), "ofe": (139, 651), "ofe-big": (924, 4573)}


def main() -> None:
    env = "Hopper-v5"
    models = {
        "sac": SAC("MlpPolicy", env, policy_kwargs=dict(net_arch=[256, 256]), buffer_size=1, device="cpu"),
        "sac-big": SAC("MlpPolicy", env, policy_kwargs=dict(net_arch=[1024, 1024]), buffer_size=1, device="cpu"),
        "ofe": SAC_OFEXi("MlpPolicy", env, preset="ofe", buffer_size=1, device="cpu"),
        "ofe-big": SAC_OFEXi("MlpPolicy", env, preset="ofe-big", buffer_size=1, device="cpu"),
    }
    print("| method | Table 4 deploy / train (k) | ours: deploy / train (k) | paper convention: deploy / train (k) |")
    print("|---|---|---|---|")
    for name, model in models.items():
        ours, paper = param_counts(model), paper_param_counts(model)
        d, t = TABLE4_HOPPER[name]
        print(
            f"| {name} | {d} / {t} | {ours['deploy'] / 1e3:.1f} / {ours['train'] / 1e3:.1f} | "
            f"{paper['deploy'] / 1e3:.1f} / {paper['train'] / 1e3:.1f} |"
        )


if __name__ == "__main__":
    main()
