"""P1 and P2: time of one SAC_OFEXi gradient step against the OFE baseline.

P1: gates on (prune-b, thetas learning) before any pruning / OFE with gates off, same sizes.
P2: after pruning (rounded, pruned) / an OFE model built directly at the pruned widths.
"""

from __future__ import annotations

import torch as th

from benchmarks.common import BATCH, filled_model, interleaved_ratio, report, script_main, set_phase
from sb3_ofexi import SAC_OFEXi
from sb3_ofexi.common.xi import xi_gates


def prune_to(model: SAC_OFEXi, keep: float, seed: int = 0) -> None:
    """Round the thetas to a random {0, 1} pattern keeping about ``keep`` of the units, and prune."""
    generator = th.Generator().manual_seed(seed)
    with th.no_grad():
        for gate in xi_gates(model.policy):
            mask = (th.rand(gate.n_units, generator=generator) < keep).float()
            gate.theta.copy_(mask.to(gate.theta.device))
    model.theta_control.round_thetas()
    set_phase(model, 0.95)  # rounded: prunes, then the gates become identities


def measure(quick: bool = True, device: str = "cpu") -> dict[str, float]:
    steps, reps = (4, 5) if quick else (20, 7)
    gated = filled_model(preset="prune-b", theta_lr=0.01, device=device)
    plain = filled_model(preset="ofe-big", device=device)
    set_phase(gated, 0.5)
    set_phase(plain, 0.5)
    assert gated.xi_phase == "learning"
    for model in (gated, plain):
        model.train(2, BATCH)  # warm-up
    p1, t_gated, t_plain = interleaved_ratio(
        lambda: gated.train(steps, BATCH), lambda: plain.train(steps, BATCH), reps, device
    )
    report(
        "P1", p1, 1.15, f"gates on {t_gated / steps * 1e3:.1f} ms/step vs gates off {t_plain / steps * 1e3:.1f} ms/step"
    )

    prune_to(gated, keep=0.3)
    widths = gated.policy.architecture_kwargs()
    direct = filled_model(
        preset="ofe-big", ofe_units=widths["ofe_units"], policy_kwargs=dict(net_arch=widths["net_arch"]), device=device
    )
    assert direct.param_counts() == gated.param_counts()
    set_phase(direct, 0.95)
    for model in (gated, direct):
        model.train(2, BATCH)
    p2, t_pruned, t_direct = interleaved_ratio(
        lambda: gated.train(steps, BATCH), lambda: direct.train(steps, BATCH), reps, device
    )
    report(
        "P2",
        p2,
        1.10,
        f"pruned {t_pruned / steps * 1e3:.1f} ms/step vs built at pruned widths "
        f"{t_direct / steps * 1e3:.1f} ms/step ({gated.param_counts()['train']:,} train params)",
    )
    return {"P1": p1, "P2": p2, "P1_ms_gated": t_gated / steps * 1e3, "P2_ms_pruned": t_pruned / steps * 1e3}


def main() -> None:
    script_main(measure, __doc__)


if __name__ == "__main__":
    main()
