"""Pruning during learn() (Algorithm 1, part IV; SPEC section 6)."""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.callbacks import BaseCallback


class PruningCallback(BaseCallback):
    """Every ``prune_freq`` env steps, remove the units whose theta < theta_tol.

    The surgery runs on the model's device; the optimizers keep the Adam moments of the
    surviving entries; units and parameters after the prune are logged under ``xi/``.
    :class:`~sb3_ofexi.SAC_OFEXi` installs one by default (``prune_freq=0`` turns it off).

    :param prune_freq: env steps between two prunes (default: the model's ``prune_freq``)
    """

    def __init__(self, prune_freq: int | None = None, verbose: int = 0) -> None:
        super().__init__(verbose)
        if prune_freq is not None and (not isinstance(prune_freq, int) or prune_freq <= 0):
            raise ValueError(f"prune_freq={prune_freq!r} is invalid: accepted: an int > 0, or None")
        self.prune_freq = prune_freq
        self.n_prunes = 0
        #: env step of the last prune; kept across learn() calls and restored from checkpoints
        self._last_prune: int | None = None

    def state_dict(self) -> dict[str, Any]:
        """What a run checkpoint keeps of this callback (its prune cadence)."""
        return {"n_calls": self.n_calls, "n_prunes": self.n_prunes, "_last_prune": self._last_prune}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.n_calls, self.n_prunes, self._last_prune = state["n_calls"], state["n_prunes"], state["_last_prune"]

    def _init_callback(self) -> None:
        if not hasattr(self.model, "theta_control"):
            raise ValueError(f"PruningCallback needs an OFEXi model (SAC_OFEXi), got {type(self.model).__name__}")
        if self.prune_freq is None:
            self.prune_freq = self.model.config.prune_freq or 1000  # type: ignore[attr-defined]
        if self._last_prune is None:
            self._last_prune = self.model.num_timesteps

    def _on_step(self) -> bool:
        assert self.prune_freq is not None and self._last_prune is not None
        if self.num_timesteps - self._last_prune >= self.prune_freq:
            self._last_prune = self.num_timesteps
            control = self.model.theta_control  # type: ignore[attr-defined]
            if control.prune():
                self.n_prunes += 1
                control.log_sizes()
                if self.verbose >= 1:
                    policy: Any = self.model.policy
                    print(
                        f"[{self.num_timesteps}] pruned: units {policy.unit_counts()}, params {policy.param_counts()}"
                    )
        return True
