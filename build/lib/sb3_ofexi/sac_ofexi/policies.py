"""SAC policy on OFEXiNet features: gated actor and critics (SPEC sections 2-3, 6-7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import SquashedDiagGaussianDistribution, StateDependentNoiseDistribution
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, preprocess_obs
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from sb3_ofexi.common.complexity import (  # noqa: F401 (re-exported)
    OFEComplexity,
    count_params,
    densenet_complexity,
    mlp_complexity,
    mlp_param_count,
    mlp_regulariser,
    ofe_complexity,
    theta_norm,
)
from sb3_ofexi.common.loading import check_builder
from sb3_ofexi.common.modules import ModuleList
from sb3_ofexi.common.ofenet import OFEXiNet, XiDenseBlock
from sb3_ofexi.common.surgery import Surgery, make_linear
from sb3_ofexi.common.theta_control import layer_gates
from sb3_ofexi.common.xi import XiGate, xi_gates

# Same clamp as SB3's SAC actor
LOG_STD_MAX = 2
LOG_STD_MIN = -20


def l2_weights(module: nn.Module) -> list[nn.Parameter]:
    """The tensors under the L2 terms of eqs. (33)/(34): Linear weights and the DenseNets' V.

    Biases, BatchNorm affine parameters and thetas are not regularised.
    """
    tensors: list[nn.Parameter] = []
    for m in module.modules():
        if isinstance(m, nn.Linear):
            tensors.append(m.weight)  # type: ignore[arg-type]  # a Parameter (torch types it Tensor)
        elif isinstance(m, XiDenseBlock):
            tensors.append(m.v)
    return tensors


class XiMlp(nn.Module):
    """An MLP whose hidden units are gated: ``h_l = xi_l * act(W_l h_{l-1} + b_l)``; linear output."""

    hidden: ModuleList[nn.Linear]
    gates: ModuleList[XiGate]
    out: nn.Linear

    def __init__(
        self,
        in_features: int,
        hidden: list[int],
        out_features: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        use_xi: bool = True,
    ) -> None:
        super().__init__()
        widths = [in_features, *hidden]
        self.hidden = ModuleList(make_linear(w_in, w_out) for w_in, w_out in zip(widths[:-1], widths[1:]))
        self.gates = ModuleList(XiGate(n, active=use_xi) for n in hidden)
        self.activation = activation_fn()
        self.out = make_linear(widths[-1], out_features)

    @property
    def units(self) -> list[int]:
        return [gate.n_units for gate in self.gates]

    @property
    def in_features(self) -> int:
        return self.hidden[0].in_features if len(self.hidden) else self.out.in_features

    @property
    def out_features(self) -> int:
        return self.out.out_features

    def forward(self, x: th.Tensor) -> th.Tensor:
        return self.forward_latent(x)[1]

    def forward_latent(self, x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """``(h_L, output)``: the last hidden layer (gated) and the output."""
        for linear, gate in zip(self.hidden, self.gates):
            x = gate(self.activation(linear(x)))
        return x, self.out(x)

    def theta_norms(self) -> list[th.Tensor]:
        return [theta_norm(gate.theta) for gate in self.gates]

    def first_layer_width(self) -> th.Tensor | int:
        """||theta_1|| of eq. (24), or the output width when there is no hidden layer."""
        return theta_norm(self.gates[0].theta) if len(self.gates) else self.out_features

    def complexity(self, d_in: th.Tensor | float) -> th.Tensor | float:
        """C_x of eq. (31)."""
        return mlp_complexity(d_in, self.theta_norms(), self.out_features)

    def regulariser(self, d_in: th.Tensor | float, mode: str) -> th.Tensor | float:
        """C_x's theta-dependent part as ``mode`` differentiates it: ``"paper"`` (eq. 32) or ``"autograd"``."""
        return mlp_regulariser(d_in, self.theta_norms(), self.out_features, mode)

    def unit_keep_masks(self, theta_tol: float) -> list[th.Tensor]:
        return [gate.keep_mask(theta_tol) for gate in self.gates]

    def prune_(self, keep_in: th.Tensor, keep_units: list[th.Tensor], surgery: Surgery) -> th.Tensor:
        """Drop input features not in ``keep_in`` and hidden units not in ``keep_units``.

        :return: keep-mask over the output (the output width never changes)
        """
        layers = [*self.hidden, self.out]
        surgery.select_linear_inputs_(layers[0], keep_in)
        for i, keep in enumerate(keep_units):
            surgery.select_linear_outputs_(self.hidden[i], keep)
            self.gates[i].prune_units_(keep, surgery)
            surgery.select_linear_inputs_(layers[i + 1], keep)
        return th.ones(self.out_features, dtype=th.bool, device=self.out.weight.device)


class XiActor(nn.Module):
    """Squashed Gaussian actor on z_o; one XiMlp whose output holds [mean, log_std].

    With ``use_sde`` (gSDE, Raffin et al. 2022, as SB3's SAC actor): the XiMlp outputs the mean
    (clipped to ``[-clip_mean, clip_mean]``), ``log_std`` is a parameter of shape
    ``(latent, action_dim)`` (``full_std``) or ``(latent, 1)`` over the last hidden layer
    ``h_L``, and the exploration noise is ``h_L @ W`` with ``W`` resampled by
    :meth:`reset_noise`. ``log_std`` and ``W`` consume ``h_L``, so they join the surgery:
    :meth:`prune_` drops their rows with the last layer's units, and noise is resampled.
    """

    def __init__(
        self,
        z_o_dim: int,
        action_dim: int,
        net_arch: list[int],
        activation_fn: type[nn.Module],
        use_xi: bool,
        use_sde: bool = False,
        log_std_init: float = -3.0,
        full_std: bool = True,
        use_expln: bool = False,
        clip_mean: float = 2.0,
    ) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.use_sde = use_sde
        self.net = XiMlp(z_o_dim, net_arch, action_dim if use_sde else 2 * action_dim, activation_fn, use_xi)
        self.action_dist: SquashedDiagGaussianDistribution | StateDependentNoiseDistribution
        if use_sde:
            self.clip_mean = clip_mean
            self.action_dist = StateDependentNoiseDistribution(
                action_dim, full_std=full_std, use_expln=use_expln, learn_features=False, squash_output=True
            )
            latent = self.net.out.in_features
            self.action_dist.latent_sde_dim = latent
            self.log_std = nn.Parameter(th.ones(latent, action_dim if full_std else 1) * log_std_init)
            self.reset_noise()
        else:
            self.action_dist = SquashedDiagGaussianDistribution(action_dim)
        self.optimizer: th.optim.Optimizer

    def get_action_dist_params(self, z_o: th.Tensor) -> tuple[th.Tensor, th.Tensor, dict[str, th.Tensor]]:
        if self.use_sde:
            latent, mean = self.net.forward_latent(z_o)
            if self.clip_mean > 0:
                mean = th.clamp(mean, -self.clip_mean, self.clip_mean)
            return mean, self.log_std, {"latent_sde": latent}
        mean, log_std = self.net(z_o).chunk(2, dim=-1)
        return mean, th.clamp(log_std, LOG_STD_MIN, LOG_STD_MAX), {}

    def forward(self, z_o: th.Tensor, deterministic: bool = False) -> th.Tensor:
        mean, log_std, kwargs = self.get_action_dist_params(z_o)
        return self.action_dist.actions_from_params(mean, log_std, deterministic=deterministic, **kwargs)

    def action_log_prob(self, z_o: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        mean, log_std, kwargs = self.get_action_dist_params(z_o)
        return self.action_dist.log_prob_from_params(mean, log_std, **kwargs)

    def get_std(self) -> th.Tensor:
        """gSDE's standard deviation over the last hidden layer, as SB3's ``Actor.get_std``."""
        if not self.use_sde:
            raise RuntimeError("get_std() is only available with gSDE: SAC_OFEXi(..., use_sde=True)")
        return self.action_dist.get_std(self.log_std)  # type: ignore[union-attr]

    def _predict(self, z_o: th.Tensor, deterministic: bool = False) -> th.Tensor:
        return self(z_o, deterministic)

    def reset_noise(self, batch_size: int = 1) -> None:
        """Resample gSDE's exploration matrices (a no-op without gSDE)."""
        if self.use_sde:
            self.action_dist.sample_weights(self.log_std, batch_size=batch_size)  # type: ignore[union-attr]

    def prune_(self, keep_in: th.Tensor, keep_units: list[th.Tensor], surgery: Surgery) -> th.Tensor:
        """The one surgery protocol: the XiMlp, then gSDE's ``log_std`` rows, which read ``h_L``."""
        keep_latent = keep_units[-1] if keep_units else keep_in
        if self.use_sde and not bool(keep_latent.all()):
            # the exploration matrices were sampled from log_std with autograd on: their graph
            # would keep log_std's pre-surgery shape alive (see Surgery); drop them first
            dist = self.action_dist
            dist.weights_dist = dist.exploration_mat = dist.exploration_matrices = None  # type: ignore[union-attr]
        keep_out = self.net.prune_(keep_in, keep_units, surgery)
        if self.use_sde:
            surgery.select_(self.log_std, 0, keep_latent)
            self.action_dist.latent_sde_dim = self.net.out.in_features  # type: ignore[union-attr]
            if not bool(keep_latent.all()):
                self.reset_noise()  # noise over the remaining units
        return keep_out


class XiCritic(nn.Module):
    """n_critics Q-networks on z_oa, each an XiMlp with its own gates (and widths after pruning)."""

    q_networks: ModuleList[XiMlp]

    def __init__(self, z_oa_dim: int, net_arch: list[list[int]], activation_fn: type[nn.Module], use_xi: bool) -> None:
        super().__init__()
        self.q_networks = ModuleList(XiMlp(z_oa_dim, arch, 1, activation_fn, use_xi) for arch in net_arch)
        self.optimizer: th.optim.Optimizer

    @property
    def n_critics(self) -> int:
        return len(self.q_networks)

    def forward(self, z_oa: th.Tensor) -> tuple[th.Tensor, ...]:
        return tuple(q_net(z_oa) for q_net in self.q_networks)


def _critic_arch(qf: list[Any], n_critics: int) -> list[list[int]]:
    """One list of widths per critic, from one list for all or one list per critic."""
    if len(qf) > 0 and all(isinstance(a, (list, tuple)) for a in qf):
        if len(qf) != n_critics:
            raise ValueError(f"net_arch['qf'] gives {len(qf)} per-critic lists but n_critics={n_critics}")
        return [list(a) for a in qf]
    return [list(qf) for _ in range(n_critics)]


class SACOFEXiPolicy(BasePolicy):
    """SAC policy whose actor reads z_o = phi_o(o) and whose critics read z_oa = phi_oa([z_o, a]).

    One OFEXiNet is shared by actor, critics and critic targets (no target copy of
    OFENet, as in the original code); it has its own optimizer, ``ofe_optimizer``.

    :param net_arch: ``[256, 256]`` for both, or ``dict(pi=[...], qf=[...])``; ``qf`` may
        also be one list per critic (that is how pruned critics of different widths are saved)
    :param ofe_units: ``dict(phi_o=[...], phi_oa=[...])``: units per DenseNet block
    :param use_xi: gates on (OFEXiNet) or off (OFENet baseline: thetas stay 1)
    :param ofe_target_dim: entries of the next observation that f_pred predicts (default all)
    :param theta_lr: learning rate of the thetas (default: the network's)
    """

    actor: XiActor
    critic: XiCritic
    critic_target: XiCritic

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, Any] | None = None,
        ofe_units: dict[str, list[int]] | None = None,
        use_xi: bool = True,
        ofe_target_dim: int | None = None,
        theta_lr: float | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        n_critics: int = 2,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        use_sde: bool = False,
        log_std_init: float = -3.0,
        full_std: bool = True,
        use_expln: bool = False,
        clip_mean: float = 2.0,
        ofexi_algorithm: str | None = None,
    ) -> None:
        check_builder(ofexi_algorithm, type(self).__name__)
        super().__init__(
            observation_space,
            action_space,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=True,
            normalize_images=normalize_images,
        )
        if net_arch is None:
            net_arch = [256, 256]
        if isinstance(net_arch, dict):
            pi_arch, qf_arch = list(net_arch.get("pi", [])), net_arch.get("qf", [])
        else:
            pi_arch, qf_arch = list(net_arch), list(net_arch)
        if ofe_units is None:
            ofe_units = {"phi_o": [32] * 6, "phi_oa": [32] * 6}
        self.net_arch = net_arch
        self.ofe_units = ofe_units
        self.use_xi = use_xi
        self.ofe_target_dim = ofe_target_dim
        self.theta_lr = theta_lr
        self.activation_fn = activation_fn
        self.n_critics = n_critics
        self.use_sde = use_sde
        self.sde_kwargs: dict[str, Any] = dict(
            log_std_init=log_std_init, full_std=full_std, use_expln=use_expln, clip_mean=clip_mean
        )
        #: theta phase whose requires_grad / gate flags these modules carry (flags are not
        #: saved, so a freshly built or loaded policy starts at None and gets them applied)
        self.xi_phase_applied: str | None = None
        #: bumped by every surgery that changes a shape: what a compiled step is specialised to
        self.shape_version = 0

        self._build(lr_schedule, pi_arch, _critic_arch(qf_arch, n_critics))

    def _build(self, lr_schedule: Schedule, pi_arch: list[int], critic_arch: list[list[int]]) -> None:
        """OFEXiNet, the actor, the critics and their target, and one optimizer per network."""
        obs_dim = get_flattened_obs_dim(self.observation_space)
        action_dim = int(spaces.flatdim(self.action_space))
        units, use_xi = self.ofe_units, self.use_xi
        self.ofe = OFEXiNet(
            obs_dim, action_dim, list(units["phi_o"]), list(units["phi_oa"]), self.ofe_target_dim, use_xi
        )
        z_o_dim, z_oa_dim = self.ofe.z_o_dim, self.ofe.z_oa_dim
        self.actor = XiActor(z_o_dim, action_dim, pi_arch, self.activation_fn, use_xi, self.use_sde, **self.sde_kwargs)
        self.critic = XiCritic(z_oa_dim, critic_arch, self.activation_fn, use_xi)
        self.critic_target = XiCritic(z_oa_dim, critic_arch, self.activation_fn, use_xi)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.train(False)
        # RL networks always read OFENet in evaluation mode (Algorithm 1, lines 12-13)
        self.ofe.train(False)
        if not use_xi:
            for gate in xi_gates(self):
                gate.theta.requires_grad_(False)
        self.to(self.device)
        self.ofe_optimizer = self._make_optimizer(self.ofe, lr_schedule)
        self.actor.optimizer = self._make_optimizer(self.actor, lr_schedule)
        self.critic.optimizer = self._make_optimizer(self.critic, lr_schedule)

    def _make_optimizer(self, module: nn.Module, lr_schedule: Schedule) -> th.optim.Optimizer:
        """Adam with three groups: L2-regularised weights (flag ``decay``), the other weights,
        and the thetas (flag ``theta``, so they keep ``theta_lr``).

        The L2 terms lambda/2 ||W||^2 of eqs. (33)/(34) are Adam's coupled ``weight_decay``
        on the ``decay`` group (it adds lambda * W to the gradient: the same math, without
        an extra autograd graph); :class:`~sb3_ofexi.SAC_OFEXi` sets the lambdas.
        """
        lr = lr_schedule(1)
        decayed = l2_weights(module)
        decayed_ids = {id(p) for p in decayed}
        others = [p for name, p in module.named_parameters() if not name.endswith("theta") and id(p) not in decayed_ids]
        groups: list[dict[str, Any]] = [
            {"params": decayed, "decay": True, "theta": False},
            {"params": others, "decay": False, "theta": False},
        ]
        if self.use_xi:
            thetas = [g.theta for g in xi_gates(module)]
            groups.append({"params": thetas, "lr": self.theta_lr or lr, "decay": False, "theta": True})
        kwargs = dict(self.optimizer_kwargs)
        if self.optimizer_class in (th.optim.Adam, th.optim.AdamW) and not {"fused", "foreach"} & kwargs.keys():
            # one fused kernel per step instead of ~10 tensor ops per parameter (the for-loop
            # implementation torch picks on CPU): a third of an eager OFE step's overhead
            kwargs["fused"] = True
        return self.optimizer_class(groups, lr=lr, **kwargs)  # type: ignore[call-arg]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                lr_schedule=self._dummy_schedule,
                activation_fn=self.activation_fn,
                n_critics=self.n_critics,
                use_xi=self.use_xi,
                ofe_target_dim=self.ofe_target_dim,
                theta_lr=self.theta_lr,
                optimizer_class=self.optimizer_class,
                optimizer_kwargs=self.optimizer_kwargs,
                use_sde=self.use_sde,
                **self.sde_kwargs,
                **self.architecture_kwargs(),
            )
        )
        return data

    def reset_noise(self, batch_size: int = 1) -> None:
        """gSDE: resample the actor's exploration matrices (SB3's ``policy.reset_noise``)."""
        self.actor.reset_noise(batch_size=batch_size)

    # --- features --------------------------------------------------------------------------
    def obs_to_features_input(self, obs: PyTorchObs) -> th.Tensor:
        """SB3's preprocessing into phi_o's input vector: a flat Box observation as it is; a dict
        observation flattened entry by entry and concatenated in the Dict's key order (what SB3's
        CombinedExtractor does with flat entries). f_pred predicts this vector for the next step."""
        processed = preprocess_obs(obs, self.observation_space, self.normalize_images)  # type: ignore[arg-type]
        if isinstance(processed, dict):
            return th.cat([processed[key].float().flatten(1) for key in self.observation_space.spaces], dim=1)  # type: ignore[attr-defined]
        return processed.float()

    def features_o(self, obs: PyTorchObs) -> th.Tensor:
        """z_o of raw observations."""
        return self.ofe.features_o(self.obs_to_features_input(obs))

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self._predict(obs, deterministic=deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self.actor(self.features_o(observation), deterministic)

    def set_training_mode(self, mode: bool) -> None:
        """Actor and critics; OFENet is in training mode only inside its own update."""
        self.actor.train(mode)
        self.critic.train(mode)
        self.ofe.train(False)
        self.training = mode

    # --- complexity (eqs. 21-27, 31) --------------------------------------------------------
    def ofe_complexity(self, rho: float) -> OFEComplexity:
        """C_OFE terms with the RL networks' thetas as constants (eq. 33)."""
        return ofe_complexity(
            self.ofe.obs_dim,
            self.ofe.action_dim,
            self.ofe.target_dim,
            [theta_norm(g.theta) for g in self.ofe.phi_o.gates],
            [theta_norm(g.theta) for g in self.ofe.phi_oa.gates],
            _detach(self.actor.net.first_layer_width()),
            [_detach(q.first_layer_width()) for q in self.critic.q_networks],
            rho,
        )

    def feature_widths(self) -> tuple[th.Tensor, th.Tensor]:
        """Expected widths of z_o and z_oa (eqs. 25, 26), OFE thetas as constants (eq. 34)."""
        with th.no_grad():
            d_z_o = self.ofe.obs_dim + sum(theta_norm(g.theta) for g in self.ofe.phi_o.gates)
            d_z_oa = d_z_o + self.ofe.action_dim + sum(theta_norm(g.theta) for g in self.ofe.phi_oa.gates)
        return th.as_tensor(d_z_o), th.as_tensor(d_z_oa)

    # --- the gates, for the theta controller (sb3_ofexi.common.theta_control) ---------------------
    def xi_layers(self) -> dict[str, XiGate]:
        """Every learnable gate by layer: ``phi_o[0]``..., ``phi_oa[0]``..., ``actor[0]``..., ``critic0[0]``..."""
        return layer_gates(self.ofe, self.actor.net, self.critic.q_networks)

    def xi_target_pairs(self) -> list[tuple[XiGate, XiGate]]:
        """(critic gate, its target's gate): a target carries its critic's thetas."""
        return [
            pair
            for q_net, q_target in zip(self.critic.q_networks, self.critic_target.q_networks)
            for pair in zip(q_net.gates, q_target.gates)
        ]

    def theta_optimizers(self) -> dict[str, th.optim.Optimizer]:
        """The optimizer that moves each network's thetas."""
        return {
            "phi_o": self.ofe_optimizer,
            "phi_oa": self.ofe_optimizer,
            "actor": self.actor.optimizer,
            "critic": self.critic.optimizer,
        }

    # --- pruning (SPEC section 6) ---------------------------------------------------------------
    def prune_(self, theta_tol: float) -> Surgery:
        """Remove every unit with theta < theta_tol, and slice the optimizers' state to match."""
        surgery = Surgery()
        keep_z_o, keep_z_oa = self.ofe.prune_(theta_tol, surgery)
        surgery.feature_masks.update(z_o=keep_z_o, z_oa=keep_z_oa)
        self.actor.prune_(keep_z_o, self.actor.net.unit_keep_masks(theta_tol), surgery)
        for q_net, q_target in zip(self.critic.q_networks, self.critic_target.q_networks):
            keep_units = q_net.unit_keep_masks(theta_tol)  # the target mirrors its critic ...
            with th.no_grad():  # ... and carries its thetas (as every target update copies them)
                for gate, gate_target in zip(q_net.gates, q_target.gates):
                    gate_target.theta.copy_(gate.theta)
            q_net.prune_(keep_z_oa, keep_units, surgery)
            q_target.prune_(keep_z_oa, keep_units, surgery)
        if surgery.changed:
            self.shape_version += 1
            surgery.slice_optimizers_([self.ofe_optimizer, self.actor.optimizer, self.critic.optimizer])
        return surgery

    def architecture_kwargs(self) -> dict[str, Any]:
        """``net_arch`` and ``ofe_units`` describing the current (possibly pruned) widths."""
        return {
            "net_arch": {"pi": self.actor.net.units, "qf": [q.units for q in self.critic.q_networks]},
            "ofe_units": {"phi_o": self.ofe.phi_o.units, "phi_oa": self.ofe.phi_oa.units},
        }

    # --- counting (SPEC section 7) ----------------------------------------------------------
    def unit_counts(self) -> dict[str, Any]:
        return {
            "phi_o": self.ofe.phi_o.units,
            "phi_oa": self.ofe.phi_oa.units,
            "actor": self.actor.net.units,
            "critic": [q.units for q in self.critic.q_networks],
        }

    def param_counts(self) -> dict[str, int]:
        """deploy = phi_o + actor; train = phi_o + phi_oa + f_pred + actor + critics."""
        phi_o, actor = count_params(self.ofe.phi_o), count_params(self.actor)
        return {"deploy": phi_o + actor, "train": count_params(self.ofe) + actor + count_params(self.critic)}

    def expected_param_counts(self, rounded: bool = False) -> dict[str, th.Tensor]:
        """:meth:`param_counts` with every width replaced by its expected value ``||theta_l||_1``
        (``rounded``: by the number of thetas >= 0.5, what rounding now would keep).

        The same sums as C (eqs. 21-23, 31) at rho = 1, without charging the RL networks'
        first layers to OFENet twice; at thetas in {0, 1} this is exactly what
        :meth:`param_counts` gives after the prune. No gradient (used to steer nu).
        """

        def width(gate: XiGate) -> th.Tensor:
            return (gate.theta >= 0.5).sum().to(gate.theta.dtype) if rounded else theta_norm(gate.theta)

        with th.no_grad():
            counts = self.param_counts_at(width)
        return {k: th.as_tensor(v) for k, v in counts.items()}

    def param_counts_at(self, width: Callable[[XiGate], th.Tensor | float]) -> dict[str, th.Tensor | float]:
        """:meth:`param_counts` of these networks if each gated layer had ``width(gate)`` units."""
        ofe, d_a = self.ofe, self.ofe.action_dim
        norms_o = [width(g) for g in ofe.phi_o.gates]
        norms_oa = [width(g) for g in ofe.phi_oa.gates]
        d_z_o = ofe.obs_dim + sum(norms_o)
        d_z_oa = d_z_o + d_a + sum(norms_oa)
        actor = self.actor.net
        actor_widths = [width(g) for g in actor.gates]
        deploy = densenet_complexity(ofe.obs_dim, norms_o) + mlp_complexity(d_z_o, actor_widths, actor.out_features)
        if self.actor.use_sde:  # gSDE's log_std: one row per unit of the actor's last layer
            deploy = deploy + (actor_widths[-1] if actor_widths else d_z_o) * self.actor.log_std.shape[1]
        critics = sum(
            mlp_complexity(d_z_oa, [width(g) for g in q.gates], q.out_features) for q in self.critic.q_networks
        )
        train = deploy + densenet_complexity(d_z_o + d_a, norms_oa) + (1 + d_z_oa) * ofe.target_dim + critics
        return {"deploy": deploy, "train": train}

    def paper_param_counts(self) -> dict[str, int]:
        """The paper's Table 4 convention: deploy as :meth:`param_counts`; train without f_pred
        and with the V network of the paper's SAC (on z_o), which SB3's SAC does not have.

        V is counted with the first critic's hidden widths (its own, pruned by nu_v in the
        paper, do not exist here); docs/COMPLEXITY.md checks this against Table 4.
        """
        counts = self.param_counts()
        v_net = mlp_param_count(self.ofe.z_o_dim, self.critic.q_networks[0].units, 1)
        return {"deploy": counts["deploy"], "train": counts["train"] - count_params(self.ofe.f_pred) + v_net}


def _detach(x: th.Tensor | int) -> th.Tensor | int:
    return x.detach() if isinstance(x, th.Tensor) else x


MlpPolicy = SACOFEXiPolicy
#: dict observations (Box / MultiBinary entries): the same policy, phi_o reads the flattened dict
MultiInputPolicy = SACOFEXiPolicy
