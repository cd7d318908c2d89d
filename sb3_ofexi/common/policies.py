"""What every OFEXi policy shares (SPEC sections 2-3, 6-7): one OFEXiNet (phi_o, phi_oa, f_pred) read
by a gated actor and gated critics, the optimizers with their L2 and theta groups, the one surgery
protocol over all of them, the counts, and what the theta controller reads
(:mod:`sb3_ofexi.common.theta_control`). An algorithm's policy adds its actor (``_make_actor``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, preprocess_obs
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from sb3_ofexi.common.complexity import (
    OFEComplexity,
    count_params,
    densenet_complexity,
    mlp_complexity,
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


class XiCritic(nn.Module):
    """n_critics Q-networks on z_oa, each an XiMlp with its own gates (and widths after pruning);
    ``out_features`` values per network (1: a Q-value; TQC: its quantiles)."""

    q_networks: ModuleList[XiMlp]

    def __init__(
        self,
        z_oa_dim: int,
        net_arch: list[list[int]],
        activation_fn: type[nn.Module],
        use_xi: bool,
        out_features: int = 1,
    ) -> None:
        super().__init__()
        self.q_networks = ModuleList(XiMlp(z_oa_dim, arch, out_features, activation_fn, use_xi) for arch in net_arch)
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


class OFEXiPolicy(BasePolicy):
    """A policy whose actor reads z_o = phi_o(o) and whose critics read z_oa = phi_oa([z_o, a]).

    One OFEXiNet is shared by actor, critics and target networks (no target copy of OFENet, as in
    the original code); it has its own optimizer, ``ofe_optimizer``. A subclass gives the actor
    (:meth:`_make_actor`: a module with ``net``, an :class:`XiMlp`, and ``prune_``), may give the
    critic (:meth:`_make_critic`) and calls :meth:`_build` at the end of its ``__init__``, as SB3's
    policies do.

    :param net_arch: ``[256, 256]`` for both, or ``dict(pi=[...], qf=[...])``; ``qf`` may
        also be one list per critic (that is how pruned critics of different widths are saved)
    :param ofe_units: ``dict(phi_o=[...], phi_oa=[...])``: units per DenseNet block
    :param use_xi: gates on (OFEXiNet) or off (OFENet baseline: thetas stay 1)
    :param ofe_target_dim: entries of the next observation that f_pred predicts (default all)
    :param theta_lr: learning rate of the thetas (default: the network's)
    :param ofexi_algorithm: set by the OFEXi algorithm that builds the policy, and saved with it:
        no other algorithm builds it from a saved file (:func:`~sb3_ofexi.common.loading.check_builder`)
    """

    actor: Any
    critic: XiCritic
    critic_target: XiCritic

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
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
        self.net_arch = [256, 256] if net_arch is None else net_arch
        self.ofe_units = {"phi_o": [32] * 6, "phi_oa": [32] * 6} if ofe_units is None else ofe_units
        self.use_xi = use_xi
        self.ofe_target_dim = ofe_target_dim
        self.theta_lr = theta_lr
        self.activation_fn = activation_fn
        self.n_critics = n_critics
        #: theta phase whose requires_grad / gate flags these modules carry (flags are not
        #: saved, so a freshly built or loaded policy starts at None and gets them applied)
        self.xi_phase_applied: str | None = None
        #: bumped by every surgery that changes a shape: what a compiled step is specialised to
        self.shape_version = 0

    def _make_actor(self, z_o_dim: int, action_dim: int, pi_arch: list[int]) -> nn.Module:
        raise NotImplementedError

    def _make_critic(self, z_oa_dim: int, critic_arch: list[list[int]]) -> XiCritic:
        """The critics (and, built the same way, their target): one Q-value per network."""
        return XiCritic(z_oa_dim, critic_arch, self.activation_fn, self.use_xi)

    def _build(self, lr_schedule: Schedule) -> None:
        """OFEXiNet, the actor, the critics and their target, and one optimizer per network."""
        if isinstance(self.net_arch, dict):
            pi_arch, qf_arch = list(self.net_arch.get("pi", [])), self.net_arch.get("qf", [])
        else:
            pi_arch, qf_arch = list(self.net_arch), list(self.net_arch)
        critic_arch = _critic_arch(qf_arch, self.n_critics)
        obs_dim = get_flattened_obs_dim(self.observation_space)
        action_dim = int(spaces.flatdim(self.action_space))
        units, use_xi = self.ofe_units, self.use_xi
        self.ofe = OFEXiNet(
            obs_dim, action_dim, list(units["phi_o"]), list(units["phi_oa"]), self.ofe_target_dim, use_xi
        )
        z_oa_dim = self.ofe.z_oa_dim
        self.actor = self._make_actor(self.ofe.z_o_dim, action_dim, pi_arch)
        self.critic = self._make_critic(z_oa_dim, critic_arch)
        self.critic_target = self._make_critic(z_oa_dim, critic_arch)
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
                **self.architecture_kwargs(),
            )
        )
        return data

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
        self._prune_actor(keep_z_o, theta_tol, surgery)
        for q_net, q_target in zip(self.critic.q_networks, self.critic_target.q_networks):
            prune_with_target(q_net, q_target, q_net, q_target, keep_z_oa, theta_tol, surgery)
        if surgery.changed:
            self.shape_version += 1
            surgery.slice_optimizers_([self.ofe_optimizer, self.actor.optimizer, self.critic.optimizer])
        return surgery

    def _prune_actor(self, keep_z_o: th.Tensor, theta_tol: float, surgery: Surgery) -> None:
        """The actor's part of the surgery (a policy with an actor target prunes it alongside)."""
        self.actor.prune_(keep_z_o, self.actor.net.unit_keep_masks(theta_tol), surgery)

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
        deploy = deploy + self._actor_extra_params(actor_widths, d_z_o)
        critics = sum(
            mlp_complexity(d_z_oa, [width(g) for g in q.gates], q.out_features) for q in self.critic.q_networks
        )
        train = deploy + densenet_complexity(d_z_o + d_a, norms_oa) + (1 + d_z_oa) * ofe.target_dim + critics
        return {"deploy": deploy, "train": train}

    def _actor_extra_params(self, widths: list[Any], d_z_o: Any) -> Any:
        """Deploy parameters of the actor outside its XiMlp at these widths (none here)."""
        return 0


def prune_with_target(
    module: Any, target: Any, net: XiMlp, net_target: XiMlp, keep_in: th.Tensor, theta_tol: float, surgery: Surgery
) -> None:
    """The surgery of a network (``module``, gated by the XiMlp ``net``) and its target: the target
    loses the same units, carrying the network's thetas (as every target update copies them), so a
    prune never changes what the target computes."""
    keep_units = net.unit_keep_masks(theta_tol)
    with th.no_grad():
        for gate, gate_target in zip(net.gates, net_target.gates):
            gate_target.theta.copy_(gate.theta)
    module.prune_(keep_in, keep_units, surgery)
    target.prune_(keep_in, keep_units, surgery)


def _detach(x: th.Tensor | int) -> th.Tensor | int:
    return x.detach() if isinstance(x, th.Tensor) else x
