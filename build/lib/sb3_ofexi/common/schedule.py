"""Points of a schedule, as every algorithm here takes them: an int is env steps (>= 0), a float
in [0, 1] a fraction of the ``learn()`` budget (``xi_start`` / ``xi_round``, ``prune_start`` /
``prune_end``)."""

from __future__ import annotations

from typing import Any

import numpy as np


def parse_schedule_point(value: Any, name: str) -> int | float:
    """``value`` as an int (env steps) or a float (fraction); a ValueError naming ``name`` otherwise."""
    if isinstance(value, (bool, np.bool_)):
        pass
    elif isinstance(value, (int, np.integer)) and value >= 0:
        return int(value)
    elif isinstance(value, (float, np.floating)) and 0.0 <= value <= 1.0:
        return float(value)
    hint = ""
    if isinstance(value, (float, np.floating)) and value > 1.0 and float(value).is_integer():
        hint = f" (for {int(value):,} env steps write the int {int(value)}; in YAML, without !!float)"
    raise ValueError(
        f"{name}={value!r} is invalid: accepted: an int >= 0 (env steps) or a float in [0, 1] "
        f"(fraction of the learn() budget){hint}"
    )


def env_steps(point: int | float, total: int) -> float:
    """The env step of a schedule point in a ``learn()`` budget of ``total`` env steps."""
    return float(point) * total if isinstance(point, float) else float(point)
