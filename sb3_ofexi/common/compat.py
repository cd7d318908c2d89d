"""Files saved by sb3_ofexi 0.1.x, before :class:`OFEXiConfig` and :class:`ThetaController`:
read into today's objects on load. 0.3.0 may drop this module (files re-saved since load anywhere).

0.1.x saved each setting and each piece of theta state as an attribute of the model. SB3's
``load`` puts the saved attributes back before ``_setup_model``; :func:`upgrade_legacy_model`
then moves them into a config and a controller, so the model continues as it was trained.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sb3_ofexi.common.config import OFEXiConfig
from sb3_ofexi.common.theta_control import ThetaController

#: what files saved before these settings existed were trained with (regulariser and pred_loss:
#: 0.1.0; nu_rl_reference: every file saved before it, which weighed nu against SB3's losses)
LEGACY_SETTINGS: dict[str, Any] = {"regulariser": "autograd", "pred_loss": "mean", "nu_rl_reference": "sb3"}
#: 0.1.x attributes of theta state -> ThetaController's
LEGACY_STATE = {
    "xi_phase": "phase",
    "_xi_rounded": "rounded",
    "nu_multipliers": "nu_multipliers",
    "initial_param_counts": "initial_param_counts",
    "budget_dropped_units": "budget_dropped_units",
    "_budget_last_step": "budget_last_step",
    "xi_record": "record",
    "theta_history": "history",
}


def upgrade_legacy_model(model: Any) -> bool:
    """Move a 0.1.x model's setting and state attributes into ``model.config`` and
    ``model.theta_control``; ``False`` (nothing done) for a model saved by this version."""
    saved = model.__dict__
    if "nu_ofe" not in saved or "_xi_rounded" not in saved:  # attributes of every 0.1.x file, of no file since
        return False
    fields = {f.name for f in dataclasses.fields(OFEXiConfig)}
    settings = {key: saved.pop(key) for key in list(saved) if key in fields}
    settings.pop("use_xi", None)  # the policy's own flag below is what the file was trained with
    for key, value in LEGACY_SETTINGS.items():
        settings.setdefault(key, value)
    policy_kwargs = model.policy_kwargs
    model.config = OFEXiConfig(
        **{
            **settings,
            "ofe_units": policy_kwargs["ofe_units"],  # 0.1.x kept only the current widths
            "net_arch": policy_kwargs.get("net_arch"),
            "use_xi": bool(policy_kwargs.get("use_xi", True)),
            "ofe_target_dim": policy_kwargs.get("ofe_target_dim"),
        }
    )
    control = ThetaController()
    for old, new in LEGACY_STATE.items():
        if old in saved:
            setattr(control, new, saved.pop(old))
    model.theta_control = control
    return True
