"""SAC_OFEXi: Soft Actor-Critic on OFEXiNet features that prunes itself while it learns.

Guenter & Sideris, "Online Training and Pruning of Deep Reinforcement Learning
Networks" (arXiv 2507.11975), Algorithm 1; SPEC sections 1-5, 7, 8.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gc
import io
import pathlib
from collections.abc import Iterator
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, ReplayBufferSamples
from torch import nn

from sb3_ofexi.common.budget import (
    BUDGET_KINDS,
    REACH,
    budget_params,
    check_budget,
    dual_update,
    fit_to_budget,
    target_size,
)
from sb3_ofexi.common.buffers import DeviceReplayBuffer
from sb3_ofexi.common.complexity import REGULARISERS
from sb3_ofexi.common.diagnostics import ThetaDiagnostics, network_of, theta_stats, undecided_by_network
from sb3_ofexi.common.export import DeployedPolicy, export_policy
from sb3_ofexi.common.loading import SafeLoadMixin
from sb3_ofexi.common.ofenet import PRED_LOSSES
from sb3_ofexi.common.pruning import PruningCallback
from sb3_ofexi.common.schedule import env_steps, parse_schedule_point
from sb3_ofexi.common.step import (
    GraphedStep,
    StepPieces,
    check_compile_step,
    graph_unsupported,
    saveable_optimizer_state,
    use_compiled_step,
)
from sb3_ofexi.common.xi import XiGate, xi_gates
from sb3_ofexi.sac_ofexi.policies import MlpPolicy, MultiInputPolicy, SACOFEXiPolicy
from sb3_ofexi.sac_ofexi.presets import get_preset

SelfSAC_OFEXi = TypeVar("SelfSAC_OFEXi", bound="SAC_OFEXi")


@contextlib.contextmanager
def _no_param_grad(*modules: nn.Module) -> Iterator[None]:
    """Let gradients flow *through* modules without computing any for their parameters."""
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


#: entries of a dict observation that phi_o can read once flattened
FLAT_ENTRY_SPACES = (spaces.Box, spaces.MultiBinary)


def check_spaces(observation_space: spaces.Space, action_space: spaces.Space) -> None:
    """SAC_OFEXi needs a flat observation (phi_o is a DenseNet over a vector): a 1-D Box, or a
    Dict of Box / MultiBinary entries (flattened and concatenated in the Dict's key order, as
    SB3's CombinedExtractor does for flat entries); and a Box action space."""
    if not isinstance(action_space, spaces.Box):
        raise ValueError(
            f"SAC_OFEXi needs a continuous action space: got {action_space!r}; accepted: gymnasium.spaces.Box"
        )
    if isinstance(observation_space, spaces.Dict):
        for key, entry in observation_space.spaces.items():
            image = isinstance(entry, spaces.Box) and len(entry.shape) == 3
            if not isinstance(entry, FLAT_ENTRY_SPACES) or image:
                raise ValueError(
                    f"SAC_OFEXi reads dict observations whose entries are flat: entry {key!r} is {entry!r}; "
                    "accepted: Box (1-D, or any shape that is not an image) and MultiBinary entries"
                )
        return
    if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
        raise ValueError(
            f"SAC_OFEXi needs a flat observation vector: got {observation_space!r}; accepted: a 1-D "
            "gymnasium.spaces.Box or a Dict of Box / MultiBinary entries (wrap image observations, e.g. "
            "with a feature-extracting wrapper or gymnasium's FlattenObservation)"
        )


def check_finite(name: str, value: np.ndarray | dict[str, np.ndarray], step: int) -> None:
    """Raise on NaN/inf coming from the environment, while the data is still in numpy."""
    if isinstance(value, dict):  # dict observations: each entry
        for key, entry in value.items():
            check_finite(f"{name} entry {key!r}", entry, step)
        return
    value = np.asarray(value)
    if value.dtype.kind in "fc" and not np.isfinite(value).all():
        bad = np.argwhere(~np.isfinite(value))
        kinds = "NaN" if np.isnan(value).any() else "inf"
        if np.isnan(value).any() and np.isinf(value).any():
            kinds = "NaN and inf"
        raise ValueError(
            f"The environment returned {kinds} in the {name} at env step {step} "
            f"(index [env, entry...] of the first bad values: {bad[:5].tolist()}); "
            "SAC_OFEXi refuses it before it reaches the networks. Check the environment or its wrappers."
        )


class SAC_OFEXi(SafeLoadMixin, SAC):  # noqa: N801 (the paper's name)
    """SAC with OFEXiNet features whose networks are pruned while they learn.

    Per gradient step (Algorithm 1): one OFE update on its own minibatch (eq. 33), then
    SAC's entropy, critic and actor updates on features of OFEXiNet in evaluation mode,
    each RL loss plus ``lambda/2 ||W||^2 + nu * C_x`` (eq. 34), thetas projected into
    [0, 1] after every step; every ``prune_freq`` steps units with theta < theta_tol
    are removed from the tensors (:class:`~sb3_ofexi.common.pruning.PruningCallback`).

    :param preset: ``ofe``, ``ofe-big``, ``prune-a``, ``prune-b`` or ``prune-c``
        (``None``: prune-b); keyword arguments below override it
    :param ofe_layers: DenseNet blocks in phi_o and in phi_oa (paper: 8 for HalfCheetah, else 6)
    :param ofe_units: units per block (int), or ``dict(phi_o=[...], phi_oa=[...])``
    :param use_xi: gates on; ``False`` is the OFE baseline (thetas fixed at 1, no nu terms)
    :param nu_ofe: nu_OFE of eq. (33)
    :param nu_actor: nu_pi of eq. (34)
    :param nu_critic: nu_q of eq. (34), for each critic
    :param lambda_ofe: L2 weight of eq. (33)
    :param lambda_rl: L2 weight of eq. (34)
    :param rho: training/deployment trade-off of eq. (27), in [0, 1]
    :param regulariser: how ``nu * C`` becomes a theta-gradient in eqs. (33)/(34):
        ``"paper"`` (the per-layer coefficients of eqs. 28, 29, 32, held constant within a
        step) or ``"autograd"`` (the exact gradient of C); default: the preset's
        (docs/CALIBRATION.md)
    :param pred_loss: L_pred of eq. (8): ``"sum"`` over the predicted entries (the paper) or
        ``"mean"`` (the original OFENet code); default: the preset's
    :param nu_rl_reference: which SAC losses ``nu_actor`` / ``nu_critic`` are weighed against.
        ``"ofenet"``: the losses of the SAC in the OFENet code [16] the paper builds on (its V
        network and pre-training are the paper's; rewards scaled by 5, each critic's own MSE
        without 1/2, alpha fixed at 1), so Table 2's values keep the paper's balance against the
        RL losses: applied to SB3's losses as ``nu_critic / 50`` and ``nu_actor / 5`` (the same
        weights and thetas under Adam, which is invariant to a loss's scale; docs/CALIBRATION.md).
        ``"sb3"``: as given, against SB3's losses (0.1.x: 50x the critics' and 5x the actor's
        push). Default: the preset's
    :param theta_tol: units with theta below it are pruned (paper: 0.1)
    :param theta_lr: learning rate of the thetas (default: the network's learning rate)
    :param xi_start: thetas learn from here on: an int is env steps (paper: 200,000), a float
        in [0, 1] a fraction of the learn() budget (default 0.2)
    :param xi_round: every theta is rounded to 0/1 and frozen here: an int is env steps, a
        float in [0, 1] a fraction of the budget (paper and default: 0.8; 1.0 never rounds)
    :param prune_freq: env steps between two prunes (0 disables pruning during learn())
    :param ofe_pretrain_steps: OFE updates before the first RL update
        (default: 1% of the learn() budget, at most 10,000 -- the paper's 10k at 1M steps)
    :param ofe_target_dim: f_pred predicts the first ``ofe_target_dim`` observation entries (default all)
    :param deploy_budget: deploy parameters (``param_counts()["deploy"]``) the model must end at or
        below: an int, or a float in (0, 1) for a fraction of the initial size. While thetas
        learn, nu_actor and nu_OFE's phi_o share are steered towards it (sb3_ofexi.common.budget)
    :param train_budget: the same for train parameters; steers every nu
    :param budget_rate: e-folds a nu multiplier can move over the learning phase at a relative
        size gap of 1 (dual-ascent step size; 10 by default: 30 overshot and undershot the budget
        in short Pendulum runs, 3 lagged until rounding had to drop ~20 units)
    :param theta_diagnostics_freq: every this many env steps of the learning phase, record per layer
        the task loss's and the regulariser's theta gradients, Adam's rate and the undecided thetas
        (``theta_history``, logger keys ``xi_diag/``; :mod:`sb3_ofexi.common.diagnostics`); 0: off
    :param compile_step: a faster gradient step computing what the eager one does: on CPU
        its pieces go through ``torch.compile``; on CUDA the whole step is captured as one
        CUDA graph (:class:`~sb3_ofexi.common.step.GraphedStep`). ``True``, ``False`` (eager,
        the reference) or ``"auto"`` (CUDA: always, gSDE excepted; CPU: for long stretches in
        which no prune can change the shapes, networks up to 1M train parameters; see
        :func:`sb3_ofexi.common.step.use_compiled_step` and docs/BENCHMARKS.md)
    :param sac_kwargs: everything :class:`stable_baselines3.SAC` accepts
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: SACOFEXiPolicy

    def __init__(
        self,
        policy: str | type[SACOFEXiPolicy],
        env: GymEnv | str | None,
        preset: str | None = None,
        *,
        ofe_layers: int = 6,
        ofe_units: int | dict[str, list[int]] | None = None,
        use_xi: bool | None = None,
        nu_ofe: float | None = None,
        nu_actor: float | None = None,
        nu_critic: float | None = None,
        lambda_ofe: float | None = None,
        lambda_rl: float | None = None,
        rho: float | None = None,
        regulariser: str | None = None,
        pred_loss: str | None = None,
        nu_rl_reference: str | None = None,
        theta_tol: float = 0.1,
        theta_lr: float | None = None,
        xi_start: int | float = 0.2,
        xi_round: int | float = 0.8,
        prune_freq: int = 1000,
        theta_diagnostics_freq: int = 5_000,
        ofe_pretrain_steps: int | None = None,
        ofe_target_dim: int | None = None,
        compile_step: bool | str = "auto",
        deploy_budget: int | float | None = None,
        train_budget: int | float | None = None,
        budget_rate: float = 10.0,
        policy_kwargs: dict[str, Any] | None = None,
        _init_setup_model: bool = True,
        **sac_kwargs: Any,
    ) -> None:
        config = get_preset(preset)
        given = dict(
            ofe_units=ofe_units,
            use_xi=use_xi,
            nu_ofe=nu_ofe,
            nu_actor=nu_actor,
            nu_critic=nu_critic,
            lambda_ofe=lambda_ofe,
            lambda_rl=lambda_rl,
            rho=rho,
            regulariser=regulariser,
            pred_loss=pred_loss,
            nu_rl_reference=nu_rl_reference,
        )
        config.update({k: v for k, v in given.items() if v is not None})
        _validate(config, ofe_layers, theta_tol, theta_lr, xi_start, xi_round, prune_freq, ofe_pretrain_steps)
        if env is not None:
            env = maybe_make_env(env, sac_kwargs.get("verbose", 0))
            check_spaces(env.observation_space, env.action_space)

        units = config["ofe_units"]
        if isinstance(units, int):
            units = {"phi_o": [units] * ofe_layers, "phi_oa": [units] * ofe_layers}
        policy_kwargs = dict(policy_kwargs or {})
        _check_policy_kwargs(policy, policy_kwargs, self.policy_aliases)
        policy_kwargs.setdefault("net_arch", config["net_arch"])
        policy_kwargs.setdefault("ofe_units", units)
        policy_kwargs.setdefault("use_xi", bool(config["use_xi"]))
        policy_kwargs.setdefault("ofe_target_dim", ofe_target_dim)
        policy_kwargs.setdefault("theta_lr", theta_lr)

        super().__init__(policy, env, policy_kwargs=policy_kwargs, _init_setup_model=False, **sac_kwargs)  # type: ignore[arg-type]

        self.preset = preset
        self.use_xi = bool(policy_kwargs["use_xi"])
        self.nu_ofe = float(config["nu_ofe"])
        self.nu_actor = float(config["nu_actor"])
        self.nu_critic = float(config["nu_critic"])
        self.lambda_ofe = float(config["lambda_ofe"])
        self.lambda_rl = float(config["lambda_rl"])
        self.rho = float(config["rho"])
        self.regulariser = str(config["regulariser"])
        self.pred_loss = str(config["pred_loss"])
        self.nu_rl_reference = str(config["nu_rl_reference"])
        self.theta_tol = theta_tol
        self.theta_lr = theta_lr
        self.xi_start = parse_schedule_point(xi_start, "xi_start")
        self.xi_round = parse_schedule_point(xi_round, "xi_round")
        self.prune_freq = prune_freq
        if (
            isinstance(theta_diagnostics_freq, bool)
            or not isinstance(theta_diagnostics_freq, int)
            or theta_diagnostics_freq < 0
        ):
            raise ValueError(f"theta_diagnostics_freq={theta_diagnostics_freq!r}: accepted: an int >= 0 (0: off)")
        self.theta_diagnostics_freq = theta_diagnostics_freq
        self.ofe_pretrain_steps = ofe_pretrain_steps
        self.compile_step = check_compile_step(compile_step)
        if self.compile_step is True and self.use_sde:
            raise ValueError(
                "compile_step=True with use_sde=True: accepted: compile_step=False or 'auto' (gSDE's "
                "exploration matrices are state outside a compiled graph; the step stays eager)"
            )
        self.deploy_budget = check_budget(deploy_budget, "deploy_budget")
        self.train_budget = check_budget(train_budget, "train_budget")
        if isinstance(budget_rate, bool) or not isinstance(budget_rate, (int, float)) or not budget_rate > 0:
            raise ValueError(f"budget_rate={budget_rate!r} is invalid: accepted: a number > 0")
        self.budget_rate = float(budget_rate)
        if self._has_budget and not self.use_xi:
            raise ValueError(
                f"deploy_budget={self.deploy_budget!r}, train_budget={self.train_budget!r} need the gates: "
                "accepted with use_xi=True (a prune-* preset), not with use_xi=False"
            )
        # budget state (saved with the model): nu multipliers, the sizes budgets are fractions of
        self.nu_multipliers = {kind: 1.0 for kind in BUDGET_KINDS}
        self.initial_param_counts: dict[str, int] | None = None
        self.budget_dropped_units = 0
        self._budget_last_step: int | None = None
        # schedule state (saved with the model)
        self._ofe_pretrained = False
        self._xi_rounded = False
        self.xi_phase = "frozen"
        #: the schedule as it happened (updates at each phase change, thetas just before rounding)
        self.xi_record: dict[str, Any] = {}
        #: rows of the theta diagnostics (one per layer and window)
        self.theta_history: list[dict[str, Any]] = []

        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        if (
            self.replay_buffer_class is None
            and self.device.type == "cuda"
            and isinstance(self.observation_space, spaces.Box)
        ):
            # minibatches gathered on the GPU: no numpy gather and host copy per sample
            self.replay_buffer_class = DeviceReplayBuffer
        super()._setup_model()
        if self.observation_space is not None and self.action_space is not None:  # also on load()
            check_spaces(self.observation_space, self.action_space)
        # lambda/2 ||W||^2 of eqs. (33)/(34) as Adam's coupled weight decay on the W (and V) group
        for optimizer, lam in (
            (self.policy.ofe_optimizer, self.lambda_ofe),
            (self.actor.optimizer, self.lambda_rl),
            (self.critic.optimizer, self.lambda_rl),
        ):
            for group in optimizer.param_groups:
                group["weight_decay"] = lam if group.get("decay") else 0.0
        if self.initial_param_counts is None:  # a new model (a loaded one keeps its own)
            self.initial_param_counts = self.policy.param_counts()
            self._check_budgets()
        #: nu multipliers per network (phi_o, phi_oa, actor, critic) as a tensor the loss pieces
        #: read, so that steering nu never changes what a compiled piece was built for
        self._nu_scale = th.ones(4, device=self.device)
        self._refresh_nu_scale()

    def _create_aliases(self) -> None:
        super()._create_aliases()
        self.ofe = self.policy.ofe
        #: (critic weights, target weights, critic thetas, target thetas), for the target update
        self._target_pairs: tuple[list[nn.Parameter], ...] | None = None
        #: the gradient step's pieces for the current shapes (step.StepPieces), and the thetas per net
        self._pieces: StepPieces | None = None
        self._thetas: dict[str, list[nn.Parameter]] = {}
        #: times the compiled step was built or captured (logged as time/step_rebuilds)
        self._step_builds = 0
        #: on CUDA with a compiled step: the step captured as one CUDA graph (step.GraphedStep)
        self._graphed = False
        self._graph: GraphedStep | None = None
        self._theta_diag: ThetaDiagnostics | None = None

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "ofe",
            "_target_pairs",
            "_pieces",
            "_thetas",
            "_step_builds",
            "_nu_scale",
            "_graphed",
            "_graph",
            "_theta_diag",
        ]

    def get_parameters(self) -> dict[str, dict]:
        """SB3's, with optimizer states as the eager step keeps them (a CUDA graph's capturable
        Adam saves float learning rates and CPU step counts, and loads anywhere)."""
        return {
            name: saveable_optimizer_state(state) if "param_groups" in state else state
            for name, state in super().get_parameters().items()
        }

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        return [*state_dicts, "policy.ofe_optimizer"], variables

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfSAC_OFEXi],
        path: str | pathlib.Path | io.BufferedIOBase,
        *args: Any,
        **kwargs: Any,
    ) -> SelfSAC_OFEXi:
        """SB3's ``load`` (with :class:`SafeLoadMixin`: an env id is accepted, and only a truncated or
        corrupted file is reported as one).

        A file saved before ``regulariser`` / ``pred_loss`` existed (0.1.0) keeps the behaviour it
        was trained with (``"autograd"`` / ``"mean"``), and one saved before ``nu_rl_reference``
        existed keeps ``"sb3"``, instead of taking today's defaults.
        """
        saved_keys = _saved_data_keys(path)
        model = super().load(path, *args, **kwargs)
        if saved_keys is not None:
            for key, value in {**LEGACY_SETTINGS, **ADDED_STATE}.items():
                if key not in saved_keys:
                    setattr(model, key, copy.deepcopy(value))
        return model

    # --- bad data from the environment ------------------------------------------------------
    def _sample_action(
        self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        check_finite("observation", self._last_obs, self.num_timesteps)  # type: ignore[arg-type]
        return super()._sample_action(learning_starts, action_noise, n_envs)

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        check_finite("observation", new_obs, self.num_timesteps)  # type: ignore[arg-type]
        check_finite("reward", reward, self.num_timesteps)
        for i, info in enumerate(infos):
            if dones[i] and info.get("terminal_observation") is not None:
                check_finite("terminal observation", info["terminal_observation"], self.num_timesteps)
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)

    def export_policy(self, path: str | pathlib.Path, check: bool = True) -> DeployedPolicy:
        """Export phi_o + actor (deterministic, SB3's action rescaling included) to ``.onnx`` or ``.pt``.

        The file reproduces ``predict(obs, deterministic=True)`` to
        :data:`~sb3_ofexi.common.export.EXPORT_ATOL` times the largest action bound (checked unless
        ``check=False``).
        """
        return export_policy(self, path, check=check)

    # --- counting -----------------------------------------------------------------------------
    def param_counts(self) -> dict[str, int]:
        """``{"deploy": phi_o + actor, "train": phi_o + phi_oa + f_pred + actor + critics}`` (SPEC section 7)."""
        return self.policy.param_counts()

    def paper_param_counts(self) -> dict[str, int]:
        """Table 4's convention: train leaves f_pred out and counts the paper's V network (docs/COMPLEXITY.md)."""
        return self.policy.paper_param_counts()

    def unit_counts(self) -> dict[str, Any]:
        """Units per hidden layer of phi_o, phi_oa, the actor and each critic (the survivors)."""
        return self.policy.unit_counts()

    # --- size budgets (sb3_ofexi.common.budget) ------------------------------------------------------
    @property
    def _has_budget(self) -> bool:
        return self.deploy_budget is not None or self.train_budget is not None

    def budgets(self) -> dict[str, int]:
        """The budgets that are set, in parameters (``{"deploy": n, "train": n}``)."""
        assert self.initial_param_counts is not None
        given = {"deploy": self.deploy_budget, "train": self.train_budget}
        return {k: budget_params(v, self.initial_param_counts[k]) for k, v in given.items() if v is not None}

    def _check_budgets(self) -> None:
        """A budget must lie between the smallest network the architecture prunes to and the initial size."""
        if not self._has_budget:
            return
        # every DenseNet unit gone, one unit left in each MLP hidden layer
        ofe_gates = {id(g) for g in xi_gates(self.policy.ofe)}
        floor = self.policy.param_counts_at(lambda gate: 0 if id(gate) in ofe_gates else 1)
        smallest = {kind: int(value) for kind, value in floor.items()}
        for kind, budget in self.budgets().items():
            value, initial = getattr(self, f"{kind}_budget"), self.initial_param_counts[kind]  # type: ignore[index]
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
        self._nu_scale.copy_(th.tensor(scale, dtype=self._nu_scale.dtype))

    def _steer_budgets(self) -> None:
        """Dual ascent on each budget's gap (expected size - target path), once per train() call."""
        budgets = self.budgets()
        start, round_at = self.schedule_steps()
        reach = start + REACH * (round_at - start)
        now = self.num_timesteps
        last = self._budget_last_step if self._budget_last_step is not None else min(now, int(start))
        eta_steps = self.budget_rate * max(0, now - last) / max(1.0, round_at - start)
        self._budget_last_step = now
        # steered on the expected size: the count at the rounded thetas (logged at dump_logs)
        # moves in steps and lags, and steering on it undershot short Pendulum budgets by up to half
        expected = self.policy.expected_param_counts()
        values = th.stack([expected[k] for k in budgets]).tolist()  # one host sync
        for (kind, budget), size in zip(budgets.items(), values):
            target = target_size(self.initial_param_counts[kind], budget, start, reach, now)  # type: ignore[index]
            self.nu_multipliers[kind] = dual_update(self.nu_multipliers[kind], size, target, eta_steps)
            self.logger.record(f"xi/expected_{kind}_params", size)
            self.logger.record(f"xi/target_{kind}_params", target)
            self.logger.record(f"xi/nu_multiplier_{kind}", self.nu_multipliers[kind])
        self._refresh_nu_scale()

    def dump_logs(self) -> None:
        """SB3's, plus ``xi/rounded_*_params`` (what rounding now would keep) while a budget steers:
        computed here, when the logs are written, not in every train() call."""
        if self._has_budget and self.xi_phase == "learning":
            rounded = self.policy.expected_param_counts(rounded=True)
            for kind in self.budgets():
                self.logger.record(f"xi/rounded_{kind}_params", float(rounded[kind]))
        super().dump_logs()

    def _fit_budgets(self, scores: dict[int, th.Tensor]) -> None:
        """After rounding: drop the lowest-theta units of the constrained networks until each budget holds."""
        ofe_gates = {id(g) for g in xi_gates(self.policy.ofe)}
        for kind, budget in self.budgets().items():
            gates = [*self.policy.ofe.phi_o.gates, *self.actor.net.gates] if kind == "deploy" else self._gates()
            dropped = fit_to_budget(
                [g.theta.data for g in gates],
                [scores[id(g)] for g in gates],
                [id(g) not in ofe_gates for g in gates],  # an MLP layer keeps one unit; a DenseNet block may go
                lambda: float(self.policy.expected_param_counts()[kind]),  # noqa: B023 (called right here)
                budget,
            )
            self.budget_dropped_units += dropped
            self.logger.record(f"xi/budget_dropped_units_{kind}", dropped)
            if dropped and self.verbose >= 1:
                print(
                    f"[{self.num_timesteps}] {kind} budget {budget:,}: rounding kept too much, dropped the "
                    f"{dropped} lowest-theta units"
                )

    # --- theta schedule (SPEC section 3) -------------------------------------------------------
    def _gates(self) -> list[XiGate]:
        return [*xi_gates(self.policy.ofe), *xi_gates(self.actor), *xi_gates(self.critic)]

    def _reached(self, point: int | float) -> bool:
        """Whether the schedule point (env steps if int, fraction of the budget if float) is reached."""
        if isinstance(point, float):
            return 1.0 - self._current_progress_remaining >= point
        return self.num_timesteps >= point

    def schedule_steps(self, total_timesteps: int | None = None) -> tuple[float, float]:
        """``(xi_start, xi_round)`` in env steps for a learn() budget (default: the current one);
        ``inf`` where the thetas are never rounded."""
        total = self._total_timesteps if total_timesteps is None else total_timesteps
        never = isinstance(self.xi_round, float) and self.xi_round >= 1.0
        return env_steps(self.xi_start, total), float("inf") if never else env_steps(self.xi_round, total)

    def _update_xi_phase(self) -> None:
        """Frozen at 1 until ``xi_start``, learning until ``xi_round``, then rounded and frozen."""
        if not self.use_xi:
            return
        never_round = isinstance(self.xi_round, float) and self.xi_round >= 1.0
        if not self._xi_rounded and not never_round and self._reached(self.xi_round):
            self.round_thetas()
        phase = "rounded" if self._xi_rounded else ("learning" if self._reached(self.xi_start) else "frozen")
        if phase != self.policy.xi_phase_applied:
            if phase != "frozen":  # when the thetas started learning, and when they were rounded
                self.xi_record.setdefault(f"{phase}_from_update", self._n_updates)
                self.xi_record.setdefault(f"{phase}_from_step", self.num_timesteps)
            for gate in self._gates():
                gate.theta.requires_grad_(phase == "learning")
            if phase == "rounded":
                # every theta is 0 or 1; once the zeros are pruned the gates are identities
                self.prune()
                for gate in [*self._gates(), *xi_gates(self.critic_target)]:
                    gate.active = False
            self.policy.xi_phase_applied = phase
        self.xi_phase = phase

    def round_thetas(self) -> None:
        """Round every theta to 0/1 (and the critic targets' to their critic's) and freeze them.

        With a budget, units are then dropped, lowest theta first, until the rounded networks fit.
        """
        scores = {id(g): g.theta.detach().clone() for g in self._gates()} if self._has_budget else {}
        before = theta_stats(self._layer_gates(), self.theta_tol)
        self.xi_record["before_rounding"] = {"layers": before, "undecided": undecided_by_network(before)}
        for gate in self._gates():
            gate.round_()
        if self._has_budget:
            self._fit_budgets(scores)
        for q_net, q_target in zip(self.critic.q_networks, self.critic_target.q_networks):
            for gate, gate_target in zip(q_net.gates, q_target.gates):
                gate_target.theta.data.copy_(gate.theta.data)
        self._xi_rounded = True

    # --- pruning (SPEC section 6) --------------------------------------------------------------
    def prune(self) -> bool:
        """Remove every unit with theta < theta_tol from the tensors; ``True`` if any was removed.

        The optimizers keep the Adam moments of the surviving entries, and ``policy_kwargs``
        is updated to the new widths so that ``save``/``load`` rebuild the pruned shapes.
        """
        if all(bool(gate.keep_mask(self.theta_tol).all()) for gate in self._gates()):
            return False  # nothing to remove: the (compiled) step stays as it is
        self._release_pieces()
        surgery = self.policy.prune_(self.theta_tol)
        if surgery.changed:
            self.policy_kwargs.update(self.policy.architecture_kwargs())
        return surgery.changed

    def _setup_learn(self, total_timesteps: int, *args: Any, **kwargs: Any) -> tuple[int, BaseCallback]:
        total, callback = super()._setup_learn(total_timesteps, *args, **kwargs)
        if self.use_xi:
            start, round_at = self.schedule_steps(self._total_timesteps)
            if start >= round_at:
                raise ValueError(
                    f"xi_start={self.xi_start!r} ({start:,.0f} env steps) must come before "
                    f"xi_round={self.xi_round!r} ({round_at:,.0f} env steps) for a learn() budget of "
                    f"{self._total_timesteps:,} steps: thetas learn between the two (an int is env steps, "
                    "a float in [0, 1] a fraction of the budget)"
                )
        return total, callback

    def learn(
        self: SelfSAC_OFEXi,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "SAC_OFEXi",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfSAC_OFEXi:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=self._with_pruning(callback),
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def _with_pruning(self, callback: MaybeCallback) -> MaybeCallback:
        """Install a :class:`PruningCallback` unless pruning is off or the user gave one."""
        if not self.use_xi or not self.prune_freq:
            return callback
        callbacks = list(callback) if isinstance(callback, list) else ([] if callback is None else [callback])
        if any(isinstance(c, PruningCallback) for c in callbacks):
            return callback
        callbacks = [c if isinstance(c, BaseCallback) else ConvertCallback(c) for c in callbacks]
        return [*callbacks, PruningCallback(self.prune_freq)]

    # --- training (Algorithm 1, parts II and III) ----------------------------------------------
    def _update_learning_rate(self, optimizers: list[th.optim.Optimizer] | th.optim.Optimizer) -> None:
        """SB3's schedule for the weights; theta groups keep ``theta_lr`` when one is set."""
        lr = self.lr_schedule(self._current_progress_remaining)
        self.logger.record("train/learning_rate", lr)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            for group in optimizer.param_groups:
                value = self.theta_lr if (group.get("theta") and self.theta_lr) else lr
                if isinstance(group["lr"], th.Tensor):  # a CUDA graph reads it: updated in place
                    group["lr"].fill_(value)
                else:
                    group["lr"] = value

    def _pretrain_steps(self) -> int:
        if self.ofe_pretrain_steps is not None:
            return self.ofe_pretrain_steps
        return min(10_000, int(0.01 * self._total_timesteps))

    def _ofe_update(self, batch_size: int, pieces: StepPieces | None = None) -> th.Tensor:
        """One OFE step on its own minibatch (Algorithm 1, lines 7-10); returns L_pred."""
        pieces = pieces or self._step_pieces()
        data, obs, next_obs = self._sample_flat(batch_size)
        return self._ofe_descend(pieces, obs, data.actions, next_obs)

    def _sample_flat(self, batch_size: int) -> tuple[ReplayBufferSamples, th.Tensor, th.Tensor]:
        """One replay minibatch, with its observations and next observations flattened to what
        the networks read (dict observations concatenated)."""
        data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
        obs = self.policy.obs_to_features_input(data.observations)
        return data, obs, self.policy.obs_to_features_input(data.next_observations)

    def _ofe_descend(self, pieces: StepPieces, obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor) -> th.Tensor:
        """The OFE step on a sampled minibatch (flat observations); returns L_pred."""
        regularise = self.use_xi and self.xi_phase == "learning"  # thetas only move in this phase
        self.policy.ofe.train(True)
        loss, pred_loss = pieces.ofe_loss(obs, actions, next_obs, regularise)
        self._descend(loss, self.policy.ofe_optimizer, self._thetas["ofe"] if regularise else [])
        self.policy.ofe.train(False)
        return pred_loss

    # The pieces of a gradient step: pure tensor functions that step.StepPieces compiles.
    def _ofe_loss(
        self, obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor, regularise: bool
    ) -> tuple[th.Tensor, th.Tensor]:
        """Eq. (33): L_pred + nu_OFE C_OFE (the L2 part is Adam's weight decay); and L_pred."""
        pred_loss = self.policy.ofe.pred_loss(obs, actions, next_obs, reduction=self.pred_loss)
        loss = pred_loss
        if regularise and self.nu_ofe > 0:
            loss = loss + self._ofe_regulariser()
        return loss, pred_loss.detach()

    # The nu terms of eqs. (33)/(34): read by the loss pieces and by the theta diagnostics
    def _ofe_regulariser(self) -> th.Tensor:
        """nu_OFE times the regulariser of C_OFE (eqs. 28-29 or autograd)."""
        complexity = self.policy.ofe_complexity(self.rho)
        if self._has_budget:  # phi_o and phi_oa answer to different budgets
            part_o, part_oa = complexity.regulariser_parts(self.regulariser)
            return self.nu_ofe * (self._nu_scale[0] * part_o + self._nu_scale[1] * part_oa)
        return self.nu_ofe * complexity.regulariser(self.regulariser)

    def _actor_regulariser(self, d_z_o: th.Tensor) -> th.Tensor:
        """nu_pi times the regulariser of C_pi (eq. 32), the OFE widths as constants."""
        nu = self.nu_actor * NU_RL_FACTORS[self.nu_rl_reference]["actor"]
        nu = nu * self._nu_scale[2] if self._has_budget else nu
        return nu * self.actor.net.regulariser(d_z_o, self.regulariser)

    def _critic_regulariser(self, d_z_oa: th.Tensor) -> th.Tensor:
        """nu_q times the regulariser of every critic's C_q (eq. 32), the OFE widths as constants."""
        nu = self.nu_critic * NU_RL_FACTORS[self.nu_rl_reference]["critic"]
        nu = nu * self._nu_scale[3] if self._has_budget else nu
        return sum(nu * q_net.regulariser(d_z_oa, self.regulariser) for q_net in self.critic.q_networks)

    def _policy_forward(self, obs: th.Tensor, next_obs: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, ...]:
        """OFE features (evaluation mode, no graph) and the actor's actions on z_o (with graph).

        Everything a piece returns is differentiated by one backward (the actor's): a compiled
        piece is one autograd node, so the entropy loss, which needs its own backward, is not here.
        """
        ofe = self.policy.ofe
        with th.no_grad():
            # obs and next_obs in one batch (Algorithm 1, lines 12-13); BN uses running stats
            z_o, next_z_o = ofe.features_o(th.cat([obs, next_obs])).chunk(2)
            z_oa = ofe.features_oa(z_o, actions)
        actions_pi, log_prob = self.actor.action_log_prob(z_o)
        return z_o, next_z_o, z_oa, actions_pi, log_prob.reshape(-1, 1)

    def _critic_loss(
        self,
        next_z_o: th.Tensor,
        z_oa: th.Tensor,
        rewards: th.Tensor,
        dones: th.Tensor,
        discounts: th.Tensor | float,
        ent_coef: th.Tensor,
        regularise: bool,
    ) -> tuple[th.Tensor, th.Tensor]:
        """Eq. (34) for the critics: the TD loss + nu_q C_q; and the TD loss.

        Called with the actor in evaluation mode: networks not being updated are used in
        evaluation mode (Algorithm 1, section 3.3).
        """
        ofe = self.policy.ofe
        with th.no_grad():
            next_actions, next_log_prob = self.actor.action_log_prob(next_z_o)
            next_q_values = th.cat(self.critic_target(ofe.features_oa(next_z_o, next_actions)), dim=1)
            next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
            next_q_values = next_q_values - ent_coef * next_log_prob.reshape(-1, 1)
            target_q_values = rewards + (1 - dones) * discounts * next_q_values
        current_q_values = self.critic(z_oa)
        critic_loss = 0.5 * sum(F.mse_loss(current_q, target_q_values) for current_q in current_q_values)
        loss = critic_loss
        if regularise and self.nu_critic > 0:
            loss = loss + self._critic_regulariser(self.policy.feature_widths()[1])  # OFE thetas as constants
        return loss, critic_loss.detach()  # type: ignore[union-attr]

    def _actor_loss(
        self, z_o: th.Tensor, actions_pi: th.Tensor, log_prob: th.Tensor, ent_coef: th.Tensor, regularise: bool
    ) -> tuple[th.Tensor, th.Tensor]:
        """Eq. (34) for the actor: SAC's actor loss + nu_pi C_pi; and SAC's actor loss.

        Differentiates through phi_oa and the critics w.r.t. the action only: called with their
        parameters' requires_grad off and the critics in evaluation mode.
        """
        q_values_pi = th.cat(self.critic(self.policy.ofe.features_oa(z_o, actions_pi)), dim=1)
        min_qf_pi, _ = th.min(q_values_pi, dim=1, keepdim=True)
        actor_loss = (ent_coef * log_prob - min_qf_pi).mean()
        loss = actor_loss
        if regularise and self.nu_actor > 0:
            loss = loss + self._actor_regulariser(self.policy.feature_widths()[0])
        return loss, actor_loss.detach()

    def _step_pieces(self) -> StepPieces:
        """The step's pieces for the current shapes and phase: compiled or eager (``compile_step``).

        Decided again, and rebuilt, only when the shapes, the theta phase or the setting change.
        """
        regularise = self.use_xi and self.xi_phase == "learning"
        # the policy's surgery counts shape changes: no walk over every tensor per train() call
        signature = (self.compile_step, self.xi_phase, self.device, self.policy.shape_version)
        if self._pieces is None or self._pieces.signature != signature:
            compiled = not self.use_sde and use_compiled_step(  # gSDE's noise is state outside a graph
                self.compile_step,
                self.device,
                phase_changes_shapes=regularise,
                steps_left=self._steps_in_phase(),
                train_params=self.param_counts()["train"],
            )
            # on CUDA the whole eager step is captured as one CUDA graph instead (GraphedStep)
            graphed = compiled and self.device.type == "cuda"
            why = graph_unsupported(self._optimizers()) if graphed else ""
            if why and self.compile_step is True:
                raise RuntimeError(f"compile_step=True, but the step cannot be captured as a CUDA graph: {why}")
            if why:  # "auto": eager
                graphed = compiled = False
            names = ("ofe_loss", "policy_forward", "critic_loss", "actor_loss")
            pieces = {name: getattr(self, f"_{name}") for name in names}
            self._release_graph()
            self._pieces = StepPieces(pieces, compiled and not graphed, signature)
            self._graphed = graphed
            self._thetas = {
                name: [gate.theta for gate in xi_gates(module)]
                for name, module in (("ofe", self.policy.ofe), ("actor", self.actor), ("critic", self.critic))
            }
            self._step_builds += int(compiled)
        return self._pieces

    def _steps_in_phase(self) -> int:
        """Env steps from now until the theta phase changes or the learn() budget ends."""
        end = float(self._total_timesteps)
        if self.use_xi:
            end = min([end, *(s for s in self.schedule_steps() if s > self.num_timesteps)])
        return max(0, int(end) - self.num_timesteps)

    def _release_pieces(self) -> None:
        """Drop the step's pieces before a surgery.

        A compiled piece keeps references into the last autograd graph it ran, and a graph that
        outlives a surgery keeps the pre-surgery shapes in the leaves' gradient accumulators
        (see :class:`~sb3_ofexi.common.surgery.Surgery`); the next backward would then fail.
        """
        self._release_graph()
        if self._pieces is not None and self._pieces.compiled:
            self._pieces = None
            gc.collect()  # the compiled functions sit in reference cycles

    def _release_graph(self) -> None:
        """Drop the CUDA graph (its memory pool goes with it and with the gradients it wrote)."""
        self._graph = None

    def _descend(self, loss: th.Tensor, optimizer: th.optim.Optimizer, thetas: list[th.Tensor]) -> None:
        """One optimizer step on ``loss``, then ``thetas`` projected into [0, 1] (eq. 6; empty
        outside the learning phase)."""
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        self._project(thetas)

    @staticmethod
    def _project(thetas: list[th.Tensor]) -> None:
        """Projected gradient step: clamp every theta into [0, 1] (eq. 6), in one call per net."""
        if thetas:
            with th.no_grad():
                th._foreach_clamp_min_(thetas, 0.0)
                th._foreach_clamp_max_(thetas, 1.0)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self._update_xi_phase()
        self.policy.set_training_mode(True)
        self._update_learning_rate(self._optimizers())
        if self._has_budget and self.xi_phase == "learning":
            self._steer_budgets()
        pieces = self._step_pieces()

        if not self._ofe_pretrained:
            for _ in range(self._pretrain_steps()):
                self._ofe_update(batch_size, pieces)
            self._ofe_pretrained = True
            self.xi_record["ofe_pretrain_updates"] = self._pretrain_steps()
        diagnostics = self._diagnostics()
        diagnose = diagnostics is not None and diagnostics.gathering(self.num_timesteps)

        stats: dict[str, list[th.Tensor]] = {
            k: [] for k in ("aux_loss", "ent_coef", "ent_coef_loss", "actor_loss", "critic_loss")
        }
        for gradient_step in range(gradient_steps):
            batch = self._sample_step_batch(batch_size)
            if self.use_sde:  # as SB3's SAC: log_std may have changed since the last step
                self.actor.reset_noise()
            update_target = gradient_step % self.target_update_interval == 0
            graph = self._graph_for(batch)
            if graph is None:
                step_stats = self._gradient_step(pieces, batch, update_target)
            else:
                step_stats = {k: v.clone() for k, v in graph(batch).items()}  # the next replay overwrites them
                if update_target and self.target_update_interval != 1:  # else inside the graph
                    self._update_critic_target()
            for key, value in step_stats.items():
                stats[key].append(value)
            if diagnose:
                diagnostics.accumulate()  # type: ignore[union-attr]

        self._n_updates += gradient_steps
        if diagnose and diagnostics.flush_due(self.num_timesteps):  # type: ignore[union-attr]
            self._record_diagnostics(diagnostics.flush(self.num_timesteps, self._n_updates, self.theta_tol))  # type: ignore[union-attr]
        self._log_train_stats(stats)

    # --- theta diagnostics (sb3_ofexi.common.diagnostics) --------------------------------------
    def _diagnostics(self) -> ThetaDiagnostics | None:
        """The diagnostics of the learning phase (``None`` outside it, or when switched off)."""
        if not (self.use_xi and self.theta_diagnostics_freq and self.xi_phase == "learning"):
            return None
        if self._theta_diag is None:
            self._theta_diag = ThetaDiagnostics(
                self._layer_gates, self._layer_optimizers, self._regulariser_push, self.theta_diagnostics_freq
            )
        return self._theta_diag

    def _layer_gates(self) -> dict[str, XiGate]:
        """Every gate by layer: ``phi_o[0]``..., ``phi_oa[0]``..., ``actor[0]``..., ``critic0[0]``..."""
        gates = {f"phi_o[{i}]": g for i, g in enumerate(self.policy.ofe.phi_o.gates)}
        gates.update({f"phi_oa[{i}]": g for i, g in enumerate(self.policy.ofe.phi_oa.gates)})
        gates.update({f"actor[{i}]": g for i, g in enumerate(self.actor.net.gates)})
        for q, q_net in enumerate(self.critic.q_networks):
            gates.update({f"critic{q}[{i}]": g for i, g in enumerate(q_net.gates)})
        return gates

    def _layer_optimizers(self) -> dict[str, th.optim.Optimizer]:
        by_net = {
            "phi_o": self.policy.ofe_optimizer,
            "phi_oa": self.policy.ofe_optimizer,
            "actor": self.actor.optimizer,
            "critic": self.critic.optimizer,
        }
        return {layer: by_net[network_of(layer)] for layer in self._layer_gates()}

    def _regulariser_push(self) -> dict[str, th.Tensor]:
        """d(nu C)/dtheta per layer, each network's thetas by its own loss's nu term (as the step)."""
        gates = self._layer_gates()
        push = {name: th.zeros_like(gate.theta) for name, gate in gates.items()}
        d_z_o, d_z_oa = self.policy.feature_widths()
        terms = (
            (("phi_o", "phi_oa"), self.nu_ofe, self._ofe_regulariser),
            (("actor",), self.nu_actor, lambda: self._actor_regulariser(d_z_o)),
            (("critic",), self.nu_critic, lambda: self._critic_regulariser(d_z_oa)),
        )
        for nets, nu, term in terms:
            names = [name for name in gates if network_of(name) in nets and gates[name].n_units > 0]
            if nu <= 0 or not names:
                continue
            with th.enable_grad():
                grads = th.autograd.grad(term(), [gates[name].theta for name in names], allow_unused=True)
            push.update({name: grad for name, grad in zip(names, grads) if grad is not None})
        return push

    def _record_diagnostics(self, rows: list[dict[str, Any]]) -> None:
        """Keep the rows (``theta_history``) and log them: per layer to the files, not to stdout."""
        self.theta_history.extend(rows)
        for row in rows:
            for key in ("task_grad", "push", "adam_rate", "undecided"):
                self.logger.record(f"xi_diag/{row['layer']}/{key}", row[key], exclude="stdout")
        layers = {row["layer"]: row for row in rows}
        for net, share in undecided_by_network(layers).items():
            self.logger.record(f"xi/undecided_{net}", share)

    def _optimizers(self) -> list[th.optim.Optimizer]:
        optimizers = [self.actor.optimizer, self.critic.optimizer, self.policy.ofe_optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        return optimizers

    def _sample_step_batch(self, batch_size: int) -> dict[str, th.Tensor]:
        """The two minibatches of one gradient step (OFE's and the RL networks', Algorithm 1
        lines 7 and 11), as flat tensors: what the step (eager or graphed) reads."""
        batch: dict[str, th.Tensor] = {}
        for prefix in ("ofe_", ""):
            data, batch[f"{prefix}obs"], batch[f"{prefix}next_obs"] = self._sample_flat(batch_size)
            batch[f"{prefix}actions"] = data.actions
        batch["rewards"], batch["dones"] = data.rewards, data.dones
        if data.discounts is not None:  # n-step buffers: per-sample discounts
            batch["discounts"] = data.discounts
        return batch

    def _gradient_step(
        self, pieces: StepPieces, batch: dict[str, th.Tensor], update_target: bool
    ) -> dict[str, th.Tensor]:
        """One gradient step of Algorithm 1 (lines 7-21) on sampled minibatches; its losses.

        The eager reference, and what :class:`~sb3_ofexi.common.step.GraphedStep` captures on
        CUDA: tensor operations only (no host sync, no data-dependent Python).
        """
        actor, critic = self.actor, self.critic
        regularise = self.use_xi and self.xi_phase == "learning"  # thetas learn: nu terms and projections
        stats = {"aux_loss": self._ofe_descend(pieces, batch["ofe_obs"], batch["ofe_actions"], batch["ofe_next_obs"])}
        discounts = batch.get("discounts", self.gamma)
        z_o, next_z_o, z_oa, actions_pi, log_prob = pieces.policy_forward(
            batch["obs"], batch["next_obs"], batch["actions"]
        )
        if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
            ent_coef = th.exp(self.log_ent_coef.detach())
            ent_coef_loss = -(self.log_ent_coef * (log_prob.detach() + self.target_entropy)).mean()
            stats["ent_coef_loss"] = ent_coef_loss.detach()
            self.ent_coef_optimizer.zero_grad()
            ent_coef_loss.backward()
            self.ent_coef_optimizer.step()
        else:
            ent_coef = self.ent_coef_tensor
        stats["ent_coef"] = ent_coef.reshape(())

        actor.train(False)
        critic_loss, td_loss = pieces.critic_loss(
            next_z_o, z_oa, batch["rewards"], batch["dones"], discounts, ent_coef, regularise
        )
        actor.train(True)
        stats["critic_loss"] = td_loss
        self._descend(critic_loss, critic.optimizer, self._thetas["critic"] if regularise else [])

        with _no_param_grad(self.policy.ofe, critic):
            critic.train(False)
            actor_loss, sac_actor_loss = pieces.actor_loss(z_o, actions_pi, log_prob, ent_coef, regularise)
            critic.train(True)
        stats["actor_loss"] = sac_actor_loss
        self._descend(actor_loss, actor.optimizer, self._thetas["actor"] if regularise else [])

        if update_target:
            self._update_critic_target()
        return stats

    def _graph_for(self, batch: dict[str, th.Tensor]) -> GraphedStep | None:
        """The CUDA graph of the step for the current shapes and phase, or None (eager).

        (Re)captured when :meth:`_step_pieces` rebuilt the step, when the minibatch's shapes
        change, or when a learning rate the capture baked in (SGD's) changed.
        """
        if not self._graphed:
            return None
        graph = self._graph
        same_step = graph is not None and graph.signature is self._pieces
        if not same_step or not graph.fits(batch) or graph.baked_lrs != graph.float_lrs():  # type: ignore[union-attr]
            self._release_graph()
            self._step_builds += int(same_step)  # a new step was counted by _step_pieces
            body = functools.partial(self._gradient_step, self._pieces, update_target=self.target_update_interval == 1)
            graph = self._graph = GraphedStep(body, self._optimizers(), self.device, signature=self._pieces)
        return graph

    def _update_critic_target(self) -> None:
        """Polyak-average the critic weights into the targets; copy the thetas.

        A target's thetas are its critic's (not an average of them), so a prune, which removes
        the target's units with its critic's mask, never changes what the target computes.
        """
        if self._target_pairs is None:
            # built once: surgery edits tensors in place, so the Parameter objects stay the same
            pairs: tuple[list[nn.Parameter], ...] = ([], [], [], [])
            for (name, param), target in zip(self.critic.named_parameters(), self.critic_target.parameters()):
                offset = 2 if name.endswith("theta") else 0
                pairs[offset].append(param)
                pairs[offset + 1].append(target)
            self._target_pairs = pairs
        weights, target_weights, thetas, target_thetas = self._target_pairs
        with th.no_grad():  # one foreach call each instead of SB3's per-tensor loop
            th._foreach_lerp_(target_weights, weights, self.tau)  # (1 - tau) target + tau weight
            if thetas:
                th._foreach_copy_(target_thetas, thetas)

    def _log_train_stats(self, stats: dict[str, list[th.Tensor]]) -> None:
        """One host sync per train() call: everything is stacked and read at once."""
        names: list[str] = []
        values: list[th.Tensor | float] = []
        for key, tensors in stats.items():
            if tensors:
                names.append(f"train/{key}")
                values.append(th.stack(tensors).float().mean())
        if self.use_xi:
            with th.no_grad():
                for name, gates in (
                    ("phi_o", self.policy.ofe.phi_o.gates),
                    ("phi_oa", self.policy.ofe.phi_oa.gates),
                    ("actor", list(self.actor.net.gates)),
                    ("critic", [g for q in self.critic.q_networks for g in q.gates]),
                ):
                    thetas = [g.theta for g in gates if g.n_units > 0]
                    if thetas:
                        names.append(f"train/theta_mean_{name}")
                        values.append(th.cat(thetas).mean())
                complexity = self.policy.ofe_complexity(self.rho)
                d_z_o, d_z_oa = self.policy.feature_widths()
                names += ["train/complexity_ofe", "train/complexity_actor", "train/complexity_critic"]
                values += [
                    complexity.total,
                    self.actor.net.complexity(d_z_o),
                    sum(q.complexity(d_z_oa) for q in self.critic.q_networks),
                ]
        stacked = th.stack([th.as_tensor(v, dtype=th.float32, device=self.device).detach() for v in values])
        for name, value in zip(names, stacked.tolist()):  # the one host sync of train()
            self.logger.record(name, value)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record(
            "time/step_compiled", float(self._graphed or (self._pieces is not None and self._pieces.compiled))
        )
        self.logger.record("time/step_graphed", float(self._graph is not None and self._graph.graph is not None))
        self.logger.record("time/step_rebuilds", max(0, self._step_builds - 1))
        self.logger.record("train/xi_learning", float(self.xi_phase == "learning"))
        self.log_sizes()

    def log_sizes(self) -> None:
        """Record units alive and deploy/train parameters under ``xi/``."""
        units = self.unit_counts()
        self.logger.record("xi/units_phi_o", sum(units["phi_o"]))
        self.logger.record("xi/units_phi_oa", sum(units["phi_oa"]))
        self.logger.record("xi/units_actor", sum(units["actor"]))
        self.logger.record("xi/units_critic", sum(sum(u) for u in units["critic"]))
        for key, value in self.param_counts().items():
            self.logger.record(f"xi/{key}_params", value)


#: policy_kwargs of SB3's SAC policy that SAC_OFEXi refuses, and why
REFUSED_POLICY_KWARGS = {
    "features_extractor_class": "OFEXiNet's phi_o is the feature extractor: it reads the flattened observation and "
    "f_pred predicts the next one, so a second, unpruned extractor in front would change what OFENet learns "
    "(preprocess observations with a gymnasium wrapper instead)",
    "features_extractor_kwargs": "see features_extractor_class",
    "share_features_extractor": "OFEXiNet is always shared by the actor and the critics (by design)",
    "use_sde": "it is SAC_OFEXi's argument: pass use_sde=True to SAC_OFEXi, as to SB3's SAC",
}
#: policy aliases SB3's SAC knows that SAC_OFEXi does not, and why
REFUSED_POLICIES = {
    "CnnPolicy": "image observations: phi_o is a DenseNet over a flat vector (flatten, or extract features "
    "with a wrapper, first)",
}


def _check_policy_kwargs(policy: Any, policy_kwargs: dict[str, Any], aliases: dict[str, type]) -> None:
    """A ValueError naming a policy or policy_kwargs key SAC_OFEXi does not take, why, and what it
    accepts (instead of a TypeError from inside SB3's constructor)."""
    import inspect

    if isinstance(policy, str):
        if policy in REFUSED_POLICIES:
            raise ValueError(
                f"policy={policy!r} is not supported: {REFUSED_POLICIES[policy]}; accepted: {sorted(aliases)}"
            )
        if policy not in aliases:
            raise ValueError(f"policy={policy!r}: accepted: {sorted(aliases)} or a SACOFEXiPolicy subclass")
        policy_class = aliases[policy]
    elif isinstance(policy, type) and issubclass(policy, SACOFEXiPolicy):
        policy_class = policy
    else:
        raise ValueError(f"policy={policy!r}: accepted: {sorted(aliases)} or a SACOFEXiPolicy subclass")
    accepted = [
        name
        for name in inspect.signature(policy_class.__init__).parameters
        if name not in ("self", "observation_space", "action_space", "lr_schedule", "use_sde")
    ]
    for key in policy_kwargs:
        if key in accepted:
            continue
        why = REFUSED_POLICY_KWARGS.get(key, f"not an argument of {policy_class.__name__}")
        raise ValueError(f"policy_kwargs[{key!r}] is not supported: {why}. Accepted keys: {', '.join(accepted)}")


def _validate(
    config: dict[str, Any],
    ofe_layers: int,
    theta_tol: float,
    theta_lr: float | None,
    xi_start: int | float,
    xi_round: int | float,
    prune_freq: int,
    ofe_pretrain_steps: int | None,
) -> None:
    """Construction-time checks: a ValueError naming the value and what is accepted."""
    for key, accepted in (
        ("regulariser", REGULARISERS),
        ("pred_loss", PRED_LOSSES),
        ("nu_rl_reference", tuple(NU_RL_FACTORS)),
    ):
        if config[key] not in accepted:
            raise ValueError(f"{key}={config[key]!r} is invalid: accepted: {', '.join(map(repr, accepted))}")
    for key in ("nu_ofe", "nu_actor", "nu_critic", "lambda_ofe", "lambda_rl"):
        value = config[key]
        if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
            raise ValueError(f"{key}={value!r} is invalid: accepted: a finite number >= 0")
    rho = config["rho"]
    if not isinstance(rho, (int, float)) or not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho={rho!r} is invalid: accepted: a number in [0, 1]")
    if not isinstance(theta_tol, (int, float)) or not 0.0 < theta_tol < 1.0:
        raise ValueError(f"theta_tol={theta_tol!r} is invalid: accepted: a number in (0, 1)")
    if theta_lr is not None and (not isinstance(theta_lr, (int, float)) or not theta_lr > 0):
        raise ValueError(f"theta_lr={theta_lr!r} is invalid: accepted: a number > 0, or None")
    start, round_at = parse_schedule_point(xi_start, "xi_start"), parse_schedule_point(xi_round, "xi_round")
    if type(start) is type(round_at) and start >= round_at:  # mixed int/float: checked in learn()
        raise ValueError(
            f"xi_start={xi_start!r} must be smaller than xi_round={xi_round!r} "
            "(thetas learn between the two; an int is env steps, a float in [0, 1] a fraction of the budget)"
        )
    if not isinstance(ofe_layers, int) or ofe_layers < 0:
        raise ValueError(f"ofe_layers={ofe_layers!r} is invalid: accepted: an int >= 0")
    units = config["ofe_units"]
    if isinstance(units, dict):
        if set(units) != {"phi_o", "phi_oa"} or not all(
            all(isinstance(n, int) and n >= 0 for n in v) for v in units.values()
        ):
            raise ValueError(f"ofe_units={units!r} is invalid: accepted: dict(phi_o=[int>=0, ...], phi_oa=[...])")
    elif not isinstance(units, int) or units < 0:
        raise ValueError(f"ofe_units={units!r} is invalid: accepted: an int >= 0 or dict(phi_o=[...], phi_oa=[...])")
    if not isinstance(prune_freq, int) or prune_freq < 0:
        raise ValueError(f"prune_freq={prune_freq!r} is invalid: accepted: an int >= 0 (0 disables pruning)")
    if ofe_pretrain_steps is not None and (not isinstance(ofe_pretrain_steps, int) or ofe_pretrain_steps < 0):
        raise ValueError(f"ofe_pretrain_steps={ofe_pretrain_steps!r} is invalid: accepted: an int >= 0, or None")


#: what files saved before these settings existed were trained with (regulariser and pred_loss:
#: 0.1.0; nu_rl_reference: every file saved before it, which weighed nu against SB3's losses)
LEGACY_SETTINGS: dict[str, Any] = {"regulariser": "autograd", "pred_loss": "mean", "nu_rl_reference": "sb3"}
#: attributes that files saved before the theta diagnostics lack, and their values
ADDED_STATE: dict[str, Any] = {"theta_diagnostics_freq": 5_000, "xi_record": {}, "theta_history": []}

#: The reward scale of the OFENet code's SAC on the paper's four tasks (its get_default_scale_reward).
OFENET_REWARD_SCALE = 5.0
#: Factors on nu_actor / nu_critic that weigh Table 2's values against SB3's SAC losses as the paper
#: weighed them against its own (nu_rl_reference). Rewards scaled by s scale Q and the TD error by s:
#: each critic's MSE (the OFENet code, no 1/2) is 2 s^2 times SB3's per-critic share (1/2 MSE), and
#: the actor loss E[log pi - Q] (alpha 1) is s times SB3's E[alpha log pi - Q] (alpha ~ 1/s). Adam
#: moves weights and thetas the same under a loss scaled by k as under nu / k.
NU_RL_FACTORS: dict[str, dict[str, float]] = {
    "ofenet": {"actor": 1.0 / OFENET_REWARD_SCALE, "critic": 1.0 / (2.0 * OFENET_REWARD_SCALE**2)},
    "sb3": {"actor": 1.0, "critic": 1.0},
}


def _saved_data_keys(path: str | pathlib.Path | io.BufferedIOBase) -> set[str] | None:
    """Top-level keys of the ``data`` entry of a saved model, or None if it cannot be read here
    (SB3's load then reports what is wrong with the file)."""
    import json
    import zipfile

    if isinstance(path, (str, pathlib.Path)):
        candidate = pathlib.Path(path)
        if not candidate.exists():  # SB3 also tries the name with ".zip" appended
            candidate = pathlib.Path(f"{path}.zip")
        source: Any = candidate
    else:
        source = path
    position = None
    try:
        position = source.tell() if hasattr(source, "tell") else None
        with zipfile.ZipFile(source) as archive:
            keys = set(json.loads(archive.read("data")))
        return keys
    except Exception:
        return None
    finally:
        if position is not None:
            source.seek(position)
