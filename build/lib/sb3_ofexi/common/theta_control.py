"""The thetas' life in one object: phases, rounding, pruning cadence, budgets, sizes (SPEC 3, 6, 7).

:class:`ThetaController` knows nothing of SAC: it reads the model it is attached to through a
small surface that any off-policy OFEXi algorithm has --

* ``model.config`` (:class:`~sb3_ofexi.common.config.OFEXiConfig`), ``model.policy``,
  ``model.logger``, ``model.verbose``, ``model.policy_kwargs``, ``model.step_runner``
  (:class:`~sb3_ofexi.common.step.StepRunner`) and SB3's ``num_timesteps``,
  ``_total_timesteps``, ``_current_progress_remaining``, ``_n_updates``;
* the policy's ``xi_layers()`` (every gate by layer name: ``phi_o[0]``..., ``actor[0]``...,
  ``critic0[0]``...), ``xi_target_pairs()``, ``theta_optimizers()``, ``prune_(theta_tol)``,
  ``architecture_kwargs()``, ``param_counts()``, ``expected_param_counts(rounded)``,
  ``param_counts_at(width)``, ``unit_counts()``, ``ofe`` and ``actor.net``.

Its state (phase, budget multipliers, the record of the schedule, the diagnostics' rows) is
saved with the model; what it holds of the model is not.
"""

from __future__ import annotations

from typing import Any

import torch as th
from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback
from stable_baselines3.common.type_aliases import MaybeCallback

from sb3_ofexi.common.budget import BUDGET_KINDS, REACH, budget_params, dual_update, fit_to_budget, target_size
from sb3_ofexi.common.config import OFEXiConfig
from sb3_ofexi.common.diagnostics import ThetaDiagnostics, network_of, theta_stats, undecided_by_network
from sb3_ofexi.common.losses import NuTerms
from sb3_ofexi.common.pruning import PruningCallback
from sb3_ofexi.common.xi import XiGate, xi_gates

#: the networks whose thetas are logged, in this order
NETWORKS = ("phi_o", "phi_oa", "actor", "critic")


class ThetaController:
    """Frozen at 1 until ``xi_start``, learning until ``xi_round``, then rounded, pruned and frozen
    (Algorithm 1); prunes every ``prune_freq`` env steps (through a :class:`PruningCallback`),
    steers nu towards size budgets (:mod:`sb3_ofexi.common.budget`), logs sizes and the theta
    diagnostics (:mod:`sb3_ofexi.common.diagnostics`)."""

    def __init__(self) -> None:
        self.phase = "frozen"
        self.rounded = False
        #: nu multipliers of the budgets, and the sizes budgets are fractions of
        self.nu_multipliers = {kind: 1.0 for kind in BUDGET_KINDS}
        self.initial_param_counts: dict[str, int] | None = None
        self.budget_dropped_units = 0
        self.budget_last_step: int | None = None
        #: the schedule as it happened (updates at each phase change, thetas just before rounding)
        self.record: dict[str, Any] = {}
        #: rows of the theta diagnostics (one per layer and window)
        self.history: list[dict[str, Any]] = []
        self._model: Any = None
        self._diagnostics: ThetaDiagnostics | None = None
        self.nu: NuTerms | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_model", "_diagnostics", "nu")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]
        self.__dict__.update(state)

    def attach(self, model: Any) -> None:
        """Bind to a model whose policy was just built (new, or loaded: the state stays)."""
        self._model, self._diagnostics = model, None
        self.nu = NuTerms(model.config, th.ones(4, device=model.device))
        self._refresh_nu_scale()
        if self.initial_param_counts is None:  # a new model (a loaded one keeps its own)
            self.initial_param_counts = model.policy.param_counts()
            self._check_budgets()

    @property
    def config(self) -> OFEXiConfig:
        return self._model.config

    @property
    def learning(self) -> bool:
        """Whether the thetas learn now: the nu terms and the projections are on."""
        return self.config.use_xi and self.phase == "learning"

    # --- the schedule ---------------------------------------------------------------------------
    def schedule_steps(self, total_timesteps: int | None = None) -> tuple[float, float]:
        """``(xi_start, xi_round)`` in env steps for a learn() budget (default: the current one)."""
        return self.config.schedule_steps(self._model._total_timesteps if total_timesteps is None else total_timesteps)

    def check_schedule(self, total_timesteps: int) -> None:
        """At learn(): xi_start must come before xi_round in env steps."""
        config = self.config
        start, round_at = config.schedule_steps(total_timesteps)
        if config.use_xi and start >= round_at:
            raise ValueError(
                f"xi_start={config.xi_start!r} ({start:,.0f} env steps) must come before "
                f"xi_round={config.xi_round!r} ({round_at:,.0f} env steps) for a learn() budget of "
                f"{total_timesteps:,} steps: thetas learn between the two (an int is env steps, "
                "a float in [0, 1] a fraction of the budget)"
            )

    def _reached(self, point: int | float) -> bool:
        if isinstance(point, float):
            return 1.0 - self._model._current_progress_remaining >= point
        return self._model.num_timesteps >= point

    def steps_in_phase(self) -> int:
        """Env steps from now until the theta phase changes or the learn() budget ends."""
        now, end = self._model.num_timesteps, float(self._model._total_timesteps)
        if self.config.use_xi:
            end = min([end, *(s for s in self.schedule_steps() if s > now)])
        return max(0, int(end) - now)

    def update_phase(self) -> None:
        """Round when ``xi_round`` is reached; apply the phase's flags when it changed."""
        config, model, policy = self.config, self._model, self._model.policy
        if not config.use_xi:
            return
        if not self.rounded and not config.never_rounds and self._reached(config.xi_round):
            self.round_thetas()
        phase = "rounded" if self.rounded else ("learning" if self._reached(config.xi_start) else "frozen")
        if phase != policy.xi_phase_applied:
            if phase != "frozen":  # when the thetas started learning, and when they were rounded
                self.record.setdefault(f"{phase}_from_update", model._n_updates)
                self.record.setdefault(f"{phase}_from_step", model.num_timesteps)
            gates = list(policy.xi_layers().values())
            for gate in gates:
                gate.theta.requires_grad_(phase == "learning")
            if phase == "rounded":
                # every theta is 0 or 1; once the zeros are pruned the gates are identities
                self.prune()
                for gate in [*gates, *(target for _, target in policy.xi_target_pairs())]:
                    gate.active = False
            policy.xi_phase_applied = phase
        self.phase = phase

    def round_thetas(self) -> None:
        """Round every theta to 0/1 (and the critic targets' to their critic's) and freeze them.

        With a budget, units are then dropped, lowest theta first, until the rounded networks fit.
        """
        layers = self._model.policy.xi_layers()
        scores = {id(g): g.theta.detach().clone() for g in layers.values()} if self.config.has_budget else {}
        before = theta_stats(layers, self.config.theta_tol)
        self.record["before_rounding"] = {"layers": before, "undecided": undecided_by_network(before)}
        for gate in layers.values():
            gate.round_()
        if self.config.has_budget:
            self._fit_budgets(scores)
        for gate, target in self._model.policy.xi_target_pairs():
            target.theta.data.copy_(gate.theta.data)
        self.rounded = True

    # --- pruning (SPEC section 6) -----------------------------------------------------------------
    def prune(self) -> bool:
        """Remove every unit with theta < theta_tol from the tensors; ``True`` if any was removed.

        The optimizers keep the Adam moments of the surviving entries, and ``policy_kwargs`` is
        updated to the new widths so that ``save``/``load`` rebuild the pruned shapes.
        """
        model, tol = self._model, self.config.theta_tol
        if all(bool(gate.keep_mask(tol).all()) for gate in model.policy.xi_layers().values()):
            return False  # nothing to remove: the (compiled) step stays as it is
        model.step_runner.release()
        surgery = model.policy.prune_(tol)
        if surgery.changed:
            model.policy_kwargs.update(model.policy.architecture_kwargs())
        return surgery.changed

    def with_pruning(self, callback: MaybeCallback) -> MaybeCallback:
        """``callback`` plus a :class:`PruningCallback`, unless pruning is off or the user gave one."""
        if not self.config.use_xi or not self.config.prune_freq:
            return callback
        callbacks: list[Any] = list(callback) if isinstance(callback, list) else [] if callback is None else [callback]
        if any(isinstance(c, PruningCallback) for c in callbacks):
            return callback
        callbacks = [c if isinstance(c, BaseCallback) else ConvertCallback(c) for c in callbacks]
        return [*callbacks, PruningCallback(self.config.prune_freq)]

    # --- size budgets (sb3_ofexi.common.budget) ---------------------------------------------------
    def budgets(self) -> dict[str, int]:
        """The budgets that are set, in parameters (``{"deploy": n, "train": n}``)."""
        assert self.initial_param_counts is not None
        given = {"deploy": self.config.deploy_budget, "train": self.config.train_budget}
        return {k: budget_params(v, self.initial_param_counts[k]) for k, v in given.items() if v is not None}

    def _check_budgets(self) -> None:
        """A budget must lie between the smallest network the architecture prunes to and the initial size."""
        if not self.config.has_budget:
            return
        policy = self._model.policy
        ofe_gates = {id(g) for g in xi_gates(policy.ofe)}  # every DenseNet unit may go, an MLP keeps one
        smallest = {k: int(v) for k, v in policy.param_counts_at(lambda g: 0 if id(g) in ofe_gates else 1).items()}
        for kind, budget in self.budgets().items():
            value, initial = getattr(self.config, f"{kind}_budget"), self.initial_param_counts[kind]  # type: ignore[index]
            if budget > initial:
                raise ValueError(
                    f"{kind}_budget={value!r} is larger than the initial {kind} size ({initial:,} "
                    f"parameters): accepted: an int <= {initial:,}, or a float in (0, 1)"
                )
            if budget < smallest[kind]:
                raise ValueError(
                    f"{kind}_budget={value!r} ({budget:,} parameters) is below the smallest {kind} "
                    f"size these networks can be pruned to ({smallest[kind]:,}): accepted: "
                    f"{smallest[kind]:,} to {initial:,} parameters"
                )

    def _refresh_nu_scale(self) -> None:
        m_deploy, m_train = self.nu_multipliers["deploy"], self.nu_multipliers["train"]
        scale = [m_deploy * m_train, m_train, m_deploy * m_train, m_train]  # phi_o, phi_oa, actor, critic
        self.nu.scale.copy_(th.tensor(scale, dtype=self.nu.scale.dtype))  # type: ignore[union-attr]

    def steer_budgets(self) -> None:
        """Dual ascent on each budget's gap (expected size - target path), once per train() call
        while the thetas learn."""
        if not (self.config.has_budget and self.learning):
            return
        model, budgets = self._model, self.budgets()
        start, round_at = self.schedule_steps()
        reach = start + REACH * (round_at - start)
        now = model.num_timesteps
        last = self.budget_last_step if self.budget_last_step is not None else min(now, int(start))
        eta_steps = self.config.budget_rate * max(0, now - last) / max(1.0, round_at - start)
        self.budget_last_step = now
        # steered on the expected size: the count at the rounded thetas (logged at dump_logs)
        # moves in steps and lags, and steering on it undershot short Pendulum budgets by up to half
        expected = model.policy.expected_param_counts()
        values = th.stack([expected[k] for k in budgets]).tolist()  # one host sync
        for (kind, budget), size in zip(budgets.items(), values):
            target = target_size(self.initial_param_counts[kind], budget, start, reach, now)  # type: ignore[index]
            self.nu_multipliers[kind] = dual_update(self.nu_multipliers[kind], size, target, eta_steps)
            model.logger.record(f"xi/expected_{kind}_params", size)
            model.logger.record(f"xi/target_{kind}_params", target)
            model.logger.record(f"xi/nu_multiplier_{kind}", self.nu_multipliers[kind])
        self._refresh_nu_scale()

    def _fit_budgets(self, scores: dict[int, th.Tensor]) -> None:
        """After rounding: drop the lowest-theta units of the constrained networks until each budget holds."""
        model, policy = self._model, self._model.policy
        ofe_gates = {id(g) for g in xi_gates(policy.ofe)}
        for kind, budget in self.budgets().items():
            gates = list(policy.xi_layers().values())
            if kind == "deploy":
                gates = [*policy.ofe.phi_o.gates, *policy.actor.net.gates]
            dropped = fit_to_budget(
                [g.theta.data for g in gates],
                [scores[id(g)] for g in gates],
                [id(g) not in ofe_gates for g in gates],  # an MLP layer keeps one unit; a DenseNet block may go
                lambda: float(policy.expected_param_counts()[kind]),  # noqa: B023 (called right here)
                budget,
            )
            self.budget_dropped_units += dropped
            model.logger.record(f"xi/budget_dropped_units_{kind}", dropped)
            if dropped and model.verbose >= 1:
                print(
                    f"[{model.num_timesteps}] {kind} budget {budget:,}: rounding kept too much, dropped the "
                    f"{dropped} lowest-theta units"
                )

    # --- logging ------------------------------------------------------------------------------
    def log_sizes(self) -> None:
        """Record units alive and deploy/train parameters under ``xi/``."""
        model = self._model
        units = model.policy.unit_counts()
        for net in NETWORKS:
            alive = units[net] if net != "critic" else [u for q in units[net] for u in q]
            model.logger.record(f"xi/units_{net}", sum(alive))
        for key, value in model.policy.param_counts().items():
            model.logger.record(f"xi/{key}_params", value)

    def log_rounded_sizes(self) -> None:
        """``xi/rounded_*_params`` (what rounding now would keep) while a budget steers: called when
        the logs are written, not in every train() call."""
        if self.config.has_budget and self.phase == "learning":
            rounded = self._model.policy.expected_param_counts(rounded=True)
            for kind in self.budgets():
                self._model.logger.record(f"xi/rounded_{kind}_params", float(rounded[kind]))

    def train_stats(self) -> dict[str, th.Tensor]:
        """The thetas' mean per network and the complexities C of eqs. (21)-(32), as tensors (the
        caller reads them with its other statistics in one host sync)."""
        if not self.config.use_xi:
            return {}
        policy, stats = self._model.policy, {}
        with th.no_grad():
            by_net: dict[str, list[th.Tensor]] = {net: [] for net in NETWORKS}
            for name, gate in policy.xi_layers().items():
                if gate.n_units > 0:
                    by_net[network_of(name)].append(gate.theta)
            stats = {f"train/theta_mean_{net}": th.cat(thetas).mean() for net, thetas in by_net.items() if thetas}
            d_z_o, d_z_oa = policy.feature_widths()
            stats["train/complexity_ofe"] = policy.ofe_complexity(self.config.rho).total
            stats["train/complexity_actor"] = policy.actor.net.complexity(d_z_o)
            stats["train/complexity_critic"] = sum(q.complexity(d_z_oa) for q in policy.critic.q_networks)
        return stats

    # --- theta diagnostics ----------------------------------------------------------------------
    def diagnostics(self) -> ThetaDiagnostics | None:
        """The diagnostics of this train() call: gathering in the learning phase, else None."""
        config, model = self.config, self._model
        if not (self.learning and config.theta_diagnostics_freq):
            return None
        if self._diagnostics is None:
            policy = model.policy
            self._diagnostics = ThetaDiagnostics(
                policy.xi_layers,
                lambda: {layer: policy.theta_optimizers()[network_of(layer)] for layer in policy.xi_layers()},
                lambda: self.nu.push(policy, policy.xi_layers()),  # type: ignore[union-attr]
                config.theta_diagnostics_freq,
            )
        return self._diagnostics if self._diagnostics.gathering(model.num_timesteps) else None

    def flush_diagnostics(self, diagnostics: ThetaDiagnostics | None) -> None:
        """At the end of a window: keep its rows (``history``) and log them, per layer to the files."""
        model = self._model
        if diagnostics is None or not diagnostics.flush_due(model.num_timesteps):
            return
        rows = diagnostics.flush(model.num_timesteps, model._n_updates, self.config.theta_tol)
        self.history.extend(rows)
        for row in rows:
            for key in ("task_grad", "push", "adam_rate", "undecided"):
                model.logger.record(f"xi_diag/{row['layer']}/{key}", row[key], exclude="stdout")
        for net, share in undecided_by_network({row["layer"]: row for row in rows}).items():
            model.logger.record(f"xi/undecided_{net}", share)


def layer_gates(ofe: Any, actor_net: Any, q_networks: Any) -> dict[str, XiGate]:
    """Every gate by layer: ``phi_o[0]``..., ``phi_oa[0]``..., ``actor[0]``..., ``critic0[0]``..."""
    gates = {f"phi_o[{i}]": g for i, g in enumerate(ofe.phi_o.gates)}
    gates.update({f"phi_oa[{i}]": g for i, g in enumerate(ofe.phi_oa.gates)})
    gates.update({f"actor[{i}]": g for i, g in enumerate(actor_net.gates)})
    for q, q_net in enumerate(q_networks):
        gates.update({f"critic{q}[{i}]": g for i, g in enumerate(q_net.gates)})
    return gates
