"""What every OFEXi algorithm adds to its stock SB3 class (SAC, TD3, sb3-contrib's TQC): the
settings (:class:`~sb3_ofexi.common.config.OFEXiConfig`), the theta controller, the step runner,
OFENet's own update (eq. 33), the optimizers' L2 and theta groups, saving, counting and export.

An algorithm is ``class X_OFEXi(OFEXiAlgorithm, X)`` with its policy (``policy_aliases``,
``policy_base``), the RL losses its nu meet (``rl_losses``), its step's pieces (``_step_pieces``)
and its ``train()``, which reads: :meth:`_begin_train`, the gradient steps, :meth:`_end_train`.
"""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar

import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback

from sb3_ofexi.common.buffers import DeviceReplayBuffer
from sb3_ofexi.common.compat import upgrade_legacy_model
from sb3_ofexi.common.config import OFEXiConfig
from sb3_ofexi.common.diagnostics import ThetaDiagnostics
from sb3_ofexi.common.export import export_policy
from sb3_ofexi.common.loading import SafeLoadMixin, building_policy
from sb3_ofexi.common.policies import OFEXiPolicy
from sb3_ofexi.common.presets import get_preset
from sb3_ofexi.common.step import (
    StepRunner,
    TargetUpdate,
    descend,
    record_means,
    sample_flat,
    saveable_optimizer_state,
)
from sb3_ofexi.common.theta_control import ThetaController
from sb3_ofexi.common.validation import FiniteDataMixin, check_policy_kwargs, check_spaces
from sb3_ofexi.common.xi import xi_gates

SelfOFEXi = TypeVar("SelfOFEXi", bound="OFEXiAlgorithm")

if TYPE_CHECKING:  # what the mixin is mixed into, for the type checker
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm as _Stock
else:
    _Stock = object


class OFEXiAlgorithm(FiniteDataMixin, SafeLoadMixin, _Stock):
    """The OFEXi part of an algorithm, mixed in before its stock SB3 class.

    :param preset: ``ofe``, ``ofe-big``, ``prune-a``, ``prune-b`` or ``prune-c`` (``None``:
        prune-b); the keyword arguments below override it
    :param ofe_layers: DenseNet blocks in phi_o and in phi_oa (paper: 8 for HalfCheetah, else 6)
    :param ofe_units: units per block (int), or ``dict(phi_o=[...], phi_oa=[...])``
    :param use_xi: gates on; ``False`` is the OFE baseline (thetas fixed at 1, no nu terms)
    :param nu_ofe: nu_OFE of eq. (33)
    :param nu_actor: nu_pi of eq. (34)
    :param nu_critic: nu_q of eq. (34), for each critic
    :param lambda_ofe: L2 weight of eq. (33)
    :param lambda_rl: L2 weight of eq. (34)
    :param rho: training/deployment trade-off of eq. (27), in [0, 1]
    :param regulariser: how ``nu * C`` becomes a theta-gradient: ``"paper"`` (the per-layer
        coefficients of eqs. 28, 29, 32, constant within a step) or ``"autograd"`` (the exact
        gradient of C); default: the preset's (docs/CALIBRATION.md)
    :param pred_loss: L_pred of eq. (8): ``"sum"`` over the predicted entries (the paper) or
        ``"mean"`` (the original OFENet code); default: the preset's
    :param nu_rl_reference: which RL losses ``nu_actor`` / ``nu_critic`` are weighed against:
        ``"ofenet"``, those of the OFENet code the paper builds on (for SAC: rewards scaled by 5,
        each critic's MSE without 1/2, alpha 1: applied as ``nu_critic / 50`` and ``nu_actor / 5``;
        for TD3 and TQC: :data:`~sb3_ofexi.common.config.NU_RL_FACTORS_BY_LOSSES`), or
        ``"sb3"``, as given (docs/CALIBRATION.md)
    :param theta_tol: units with theta below it are pruned (paper: 0.1)
    :param theta_lr: learning rate of the thetas (default: the network's learning rate)
    :param xi_start: thetas learn from here on: an int is env steps (paper: 200,000), a float in
        [0, 1] a fraction of the learn() budget (default 0.2)
    :param xi_round: every theta is rounded to 0/1 and frozen here (int or fraction as
        ``xi_start``; paper and default: 0.8; 1.0 never rounds)
    :param prune_freq: env steps between two prunes (0 disables pruning during learn())
    :param theta_diagnostics_freq: every this many env steps of the learning phase, record per
        layer the task's and the regulariser's theta gradients, Adam's rate and the undecided
        thetas (``theta_history``, logger keys ``xi_diag/``); 0: off
    :param ofe_pretrain_steps: OFE updates before the first RL update (default: 1% of the
        learn() budget, at most 10,000 -- the paper's 10k at 1M steps)
    :param ofe_target_dim: f_pred predicts the first ``ofe_target_dim`` observation entries (default all)
    :param compile_step: ``True``, ``False`` (eager, the reference) or ``"auto"``: a faster step
        computing what the eager one does (CPU: ``torch.compile`` of the pieces; CUDA: one CUDA
        graph; :func:`~sb3_ofexi.common.step.use_compiled_step`, docs/BENCHMARKS.md)
    :param deploy_budget: deploy parameters the model must end at or below (an int, or a float in
        (0, 1) of the initial size); nu is steered towards it while thetas learn
    :param train_budget: the same for train parameters
    :param budget_rate: e-folds a nu multiplier can move over the learning phase at a relative
        size gap of 1 (:mod:`sb3_ofexi.common.budget`)
    :param algo_kwargs: everything the stock algorithm accepts
    """

    #: the name saved with the policy: only this algorithm builds it from a file
    ofexi_name: ClassVar[str]
    #: the policy class every policy of the algorithm derives from
    policy_base: ClassVar[type[OFEXiPolicy]]
    #: the family of RL losses ``nu_actor`` / ``nu_critic`` meet (``OFEXiConfig.rl_losses``)
    rl_losses: ClassVar[str]
    policy: OFEXiPolicy
    config: OFEXiConfig
    step_runner: StepRunner
    target_update: TargetUpdate

    def __init__(
        self,
        policy: str | type[OFEXiPolicy],
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
        **algo_kwargs: Any,
    ) -> None:
        given = {k: v for k, v in locals().items() if k in OFEXiConfig.__dataclass_fields__ and k != "preset"}
        config = OFEXiConfig.build(preset, get_preset(preset), ofe_layers, rl_losses=self.rl_losses, **given)
        name = self.ofexi_name
        if env is not None:
            env = maybe_make_env(env, algo_kwargs.get("verbose", 0))
            check_spaces(env.observation_space, env.action_space, name)
        policy_kwargs = dict(policy_kwargs or {})
        check_policy_kwargs(policy, policy_kwargs, self.policy_aliases, self.policy_base, name)
        self._check_algo_kwargs(algo_kwargs)
        for key in ("net_arch", "ofe_units", "use_xi", "ofe_target_dim", "theta_lr"):
            policy_kwargs.setdefault(key, getattr(config, key))
        policy_kwargs["ofexi_algorithm"] = name  # no other algorithm builds it from a saved file
        super().__init__(policy, env, policy_kwargs=policy_kwargs, _init_setup_model=False, **algo_kwargs)  # type: ignore[call-arg, arg-type]

        self.config = config.replace(use_xi=bool(policy_kwargs["use_xi"]), theta_lr=policy_kwargs["theta_lr"])
        if config.compile_step is True and getattr(self, "use_sde", False):
            raise ValueError(
                "compile_step=True with use_sde=True: accepted: compile_step=False or 'auto' (gSDE's "
                "exploration matrices are state outside a compiled graph; the step stays eager)"
            )
        self.theta_control = ThetaController()
        self._ofe_pretrained = False
        if _init_setup_model:
            self._setup_model()

    @classmethod
    def _check_algo_kwargs(cls, algo_kwargs: dict[str, Any]) -> None:
        """A ValueError for a stock-class argument that would fail inside SB3 without saying why."""

    def _step_pieces(self) -> NamedTuple:
        """The step's pure pieces (a NamedTuple of functions :class:`StepRunner` may compile)."""
        raise NotImplementedError

    def _target_pairs(self) -> tuple[th.nn.Module, th.nn.Module]:
        """(networks, their targets) that the target update averages."""
        return self.critic, self.critic_target  # type: ignore[attr-defined]

    def _setup_model(self) -> None:
        upgrade_legacy_model(self)  # a file saved by 0.1.x: its settings and theta state
        if self.replay_buffer_class is None and self.device.type == "cuda":
            if isinstance(self.observation_space, spaces.Box):  # minibatches gathered on the GPU
                self.replay_buffer_class = DeviceReplayBuffer
        with building_policy(self.ofexi_name):
            super()._setup_model()
        if self.observation_space is not None and self.action_space is not None:  # also on load()
            check_spaces(self.observation_space, self.action_space, self.ofexi_name)
        # lambda/2 ||W||^2 of eqs. (33)/(34) as Adam's coupled weight decay on the W (and V) group
        for optimizer, lam in (
            (self.policy.ofe_optimizer, self.config.lambda_ofe),
            (self.policy.actor.optimizer, self.config.lambda_rl),
            (self.policy.critic.optimizer, self.config.lambda_rl),
        ):
            for group in optimizer.param_groups:
                group["weight_decay"] = lam if group.get("decay") else 0.0
        self.step_runner = StepRunner(self._step_pieces(), self._optimizers(), self.device)
        self.target_update = TargetUpdate(*self._target_pairs())
        #: each network's thetas, projected after its update while they learn
        self._thetas: dict[str, list[th.Tensor]] = {
            name: [g.theta for g in xi_gates(m)] for name, m in self._networks().items()
        }
        self.theta_control.attach(self)

    def _create_aliases(self) -> None:
        super()._create_aliases()  # type: ignore[misc]
        self.ofe = self.policy.ofe

    def _networks(self) -> dict[str, th.nn.Module]:
        return {"ofe": self.policy.ofe, "actor": self.policy.actor, "critic": self.policy.critic}

    def _optimizers(self) -> list[th.optim.Optimizer]:
        optimizers = [self.policy.actor.optimizer, self.policy.critic.optimizer, self.policy.ofe_optimizer]
        ent_coef_optimizer = getattr(self, "ent_coef_optimizer", None)  # SAC's and TQC's entropy
        return optimizers + ([ent_coef_optimizer] if ent_coef_optimizer is not None else [])

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "ofe", "step_runner", "target_update", "_thetas"]

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

    # --- what a user reads: sizes, the thetas' schedule, the deployed policy ----------------------
    def param_counts(self) -> dict[str, int]:
        """``{"deploy": phi_o + actor, "train": phi_o + phi_oa + f_pred + actor + critics}`` (SPEC section 7)."""
        return self.policy.param_counts()

    def unit_counts(self) -> dict[str, Any]:
        """Units per hidden layer of phi_o, phi_oa, the actor and each critic (the survivors)."""
        return self.policy.unit_counts()

    @property
    def xi_phase(self) -> str:
        """``"frozen"``, ``"learning"`` or ``"rounded"``."""
        return self.theta_control.phase

    @property
    def xi_record(self) -> dict[str, Any]:
        """The schedule as it happened: updates at each phase change, the thetas before rounding."""
        return self.theta_control.record

    @property
    def theta_history(self) -> list[dict[str, Any]]:
        """The theta diagnostics' rows (one per layer and window)."""
        return self.theta_control.history

    def schedule_steps(self, total_timesteps: int | None = None) -> tuple[float, float]:
        """``(xi_start, xi_round)`` in env steps for a learn() budget (default: the current one)."""
        return self.theta_control.schedule_steps(total_timesteps)

    def prune(self) -> bool:
        """Remove every unit with theta < theta_tol now; ``True`` if any was removed."""
        return self.theta_control.prune()

    def export_policy(self, path: str | pathlib.Path, check: bool | None = None, **options: Any) -> th.nn.Module:
        """Export phi_o + actor (deterministic, SB3's action rescaling included) to ``.onnx``,
        ``.pt`` or C (``.c`` / a folder, ``format="c"``; ``options``: :func:`~sb3_ofexi.common.export.export_policy`'s);
        checked to reproduce ``predict(obs, deterministic=True)`` unless ``check=False``."""
        return export_policy(self, path, check=check, **options)

    # --- learning ---------------------------------------------------------------------------------
    def _setup_learn(self, total_timesteps: int, *args: Any, **kwargs: Any) -> tuple[int, BaseCallback]:
        total, callback = super()._setup_learn(total_timesteps, *args, **kwargs)
        self.theta_control.check_schedule(self._total_timesteps)
        return total, callback

    def learn(
        self: SelfOFEXi,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfOFEXi:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=self.theta_control.with_pruning(callback),  # prunes every prune_freq env steps
            log_interval=log_interval,
            tb_log_name=tb_log_name or self.ofexi_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def dump_logs(self) -> None:
        self.theta_control.log_rounded_sizes()  # computed when the logs are written, not per train()
        super().dump_logs()

    def _update_learning_rate(self, optimizers: list[th.optim.Optimizer] | th.optim.Optimizer) -> None:
        """SB3's schedule for the weights; theta groups keep ``theta_lr`` when one is set."""
        lr = self.lr_schedule(self._current_progress_remaining)
        self.logger.record("train/learning_rate", lr)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            for group in optimizer.param_groups:
                value = self.config.theta_lr if (group.get("theta") and self.config.theta_lr) else lr
                if isinstance(group["lr"], th.Tensor):  # a CUDA graph reads it: updated in place
                    group["lr"].fill_(value)
                else:
                    group["lr"] = value

    def _begin_train(self, batch_size: int, graph_blocker: str = "") -> ThetaDiagnostics | None:
        """What precedes the gradient steps of a ``train()`` call: the theta phase (frozen -> learning
        -> rounded and pruned), learning rates, budgets, the step's build, OFENet's pre-training
        before the first RL update. Returns the theta diagnostics of this window (or None).

        :param graph_blocker: why this step cannot be one CUDA graph ("": it can)
        """
        control = self.theta_control
        control.update_phase()
        self.policy.set_training_mode(True)
        self._update_learning_rate(self._optimizers())
        control.steer_budgets()
        self.step_runner.prepare(
            self.config.compile_step,
            (control.phase, self.device, self.policy.shape_version),
            use_sde=getattr(self, "use_sde", False),
            shapes_may_change=control.learning,
            steps_left=control.steps_in_phase,
            train_params=lambda: self.param_counts()["train"],
            graph_blocker=graph_blocker,
        )
        if not self._ofe_pretrained:  # OFENet alone before the first RL update
            pretrain = self.config.ofe_pretrain_steps
            pretrain = min(10_000, int(0.01 * self._total_timesteps)) if pretrain is None else pretrain
            for _ in range(pretrain):
                data, obs, next_obs = sample_flat(self.policy, self.replay_buffer, batch_size, self._vec_normalize_env)
                self._ofe_step(obs, data.actions, next_obs)
            self._ofe_pretrained = True
            control.record["ofe_pretrain_updates"] = pretrain
        return control.diagnostics()

    def _end_train(
        self, gradient_steps: int, stats: dict[str, list[th.Tensor]], diagnostics: ThetaDiagnostics | None
    ) -> None:
        """What follows the gradient steps: counters, the diagnostics' window, the logs (one host sync)."""
        control = self.theta_control
        self._n_updates += gradient_steps
        control.flush_diagnostics(diagnostics)
        record_means(self.logger, stats, control.train_stats(), self.device)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/xi_learning", float(control.learning))
        self.step_runner.record(self.logger)
        control.log_sizes()

    def _ofe_step(self, obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor) -> th.Tensor:
        """One OFE update on its own minibatch (Algorithm 1, lines 7-10; eq. 33); returns L_pred.
        OFENet is in training mode for its own update only."""
        nu = self.theta_control.nu if self.theta_control.learning else None
        self.ofe.train(True)
        loss, pred_loss = self.step_runner.pieces.ofe_loss(
            self.policy, obs, actions, next_obs, self.config.pred_loss, nu
        )
        descend(loss, self.policy.ofe_optimizer, self._thetas["ofe"] if nu is not None else [])
        self.ofe.train(False)
        return pred_loss


def update_entropy_coef(model: Any, log_prob: th.Tensor, stats: dict[str, th.Tensor]) -> th.Tensor:
    """SAC's (and TQC's) entropy-coefficient update on ``log_prob`` of the current actions, as SB3
    does it; returns the coefficient for this step's losses and records it (and its loss) in ``stats``."""
    if model.ent_coef_optimizer is not None and model.log_ent_coef is not None:
        ent_coef = th.exp(model.log_ent_coef.detach())
        ent_coef_loss = -(model.log_ent_coef * (log_prob.detach() + model.target_entropy)).mean()
        stats["ent_coef_loss"] = ent_coef_loss.detach()
        model.ent_coef_optimizer.zero_grad()
        ent_coef_loss.backward()
        model.ent_coef_optimizer.step()
    else:
        ent_coef = model.ent_coef_tensor
    stats["ent_coef"] = ent_coef.reshape(())
    return ent_coef
