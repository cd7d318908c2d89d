"""Named configurations of the paper's section 5 (sizes) and Table 2 (regularisers)."""

from __future__ import annotations

from typing import Any

# Sizes: OFE = 32 units per block, SAC 256x2; OFE-Big and every Prune-* start at 128 / 512x2.
_SMALL: dict[str, Any] = {"ofe_units": 32, "net_arch": [256, 256]}
_BIG: dict[str, Any] = {"ofe_units": 128, "net_arch": [512, 512]}
_NO_REG: dict[str, Any] = {"nu_ofe": 0.0, "nu_actor": 0.0, "nu_critic": 0.0, "lambda_ofe": 0.0, "lambda_rl": 0.0}
# How nu*C becomes a theta-gradient and how L_pred is scaled: chosen by the calibration in
# docs/CALIBRATION.md (python -m benchmarks.calibrate_ofe), the same for every preset so
# that the OFE baselines train OFENet on the same loss as the pruning presets.
# nu_rl_reference: Table 2's nu_pi / nu_q weighed against the OFENet code's SAC losses, as in the
# paper (docs/CALIBRATION.md, "The RL side").
_FIDELITY: dict[str, Any] = {"regulariser": "paper", "pred_loss": "sum", "nu_rl_reference": "ofenet"}

PRESETS: dict[str, dict[str, Any]] = {
    name: {**_FIDELITY, **config}
    for name, config in {
        "ofe": {**_SMALL, **_NO_REG, "use_xi": False, "rho": 0.5},
        "ofe-big": {**_BIG, **_NO_REG, "use_xi": False, "rho": 0.5},
        # Table 2. nu_critic is the paper's nu_q (SB3's SAC has no V network, so nu_v is dropped).
        "prune-a": {
            **_BIG,
            "use_xi": True,
            "lambda_ofe": 1e-9,
            "lambda_rl": 1e-9,
            "nu_ofe": 5e-8,
            "nu_actor": 2e-6,
            "nu_critic": 1e-4,
            "rho": 1.0,
        },
        "prune-b": {
            **_BIG,
            "use_xi": True,
            "lambda_ofe": 1e-6,
            "lambda_rl": 1e-9,
            "nu_ofe": 2e-7,
            "nu_actor": 1e-5,
            "nu_critic": 5e-4,
            "rho": 0.5,
        },
        "prune-c": {
            **_BIG,
            "use_xi": True,
            "lambda_ofe": 1e-6,
            "lambda_rl": 1e-9,
            "nu_ofe": 3e-7,
            "nu_actor": 2e-5,
            "nu_critic": 2.5e-3,
            "rho": 0.5,
        },
    }.items()
}

#: What ``SAC_OFEXi(...)`` uses when no preset is named: the method itself, Prune-B.
DEFAULT_PRESET = "prune-b"


def get_preset(name: str | None) -> dict[str, Any]:
    """A copy of the named preset (``None`` gives :data:`DEFAULT_PRESET`)."""
    key = DEFAULT_PRESET if name is None else name
    if not isinstance(key, str) or key.lower() not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}: accepted presets are {sorted(PRESETS)} (or None)")
    return dict(PRESETS[key.lower()])
