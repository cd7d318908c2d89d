"""OFEXiNet: the OFENet DenseNets phi_o, phi_oa and the predictor f_pred, with xi gates.

Paper section 3.1, eqs. (10)-(11); SPEC section 2.
"""

from __future__ import annotations

import torch as th
import torch.nn.functional as F
from torch import nn

from sb3_ofexi.common.modules import ModuleList
from sb3_ofexi.common.surgery import Surgery, make_linear
from sb3_ofexi.common.xi import XiGate

#: accepted values of ``pred_loss=``: eq. (8) sums over the entries, the OFENet code averages
PRED_LOSSES = ("sum", "mean")


class XiDenseBlock(nn.Module):
    """One DenseNet block, eq. (10)/(11), in the order of the original OFENet code::

        h = swish(BN(W z + b)) * xi ;  out = concat([h, v * z])

    ``v`` is the learnable diagonal of V_l, initialised to 1.
    """

    linear: nn.Linear
    bn: nn.BatchNorm1d
    gate: XiGate
    v: nn.Parameter

    def __init__(self, in_features: int, units: int, use_xi: bool = True) -> None:
        super().__init__()
        self.linear = make_linear(in_features, units)
        self.bn = nn.BatchNorm1d(units)
        self.gate = XiGate(units, active=use_xi)
        self.v = nn.Parameter(th.ones(in_features))

    @property
    def in_features(self) -> int:
        return self.v.shape[0]

    @property
    def units(self) -> int:
        return self.gate.n_units

    @property
    def out_features(self) -> int:
        return self.units + self.in_features

    def forward(self, z: th.Tensor) -> th.Tensor:
        passthrough = self.v * z
        if self.units == 0:  # every unit pruned: the block only passes its input through
            return passthrough
        h = self.gate(F.silu(self.bn(self.linear(z))))
        return th.cat([h, passthrough], dim=1)

    def prune_(self, keep_in: th.Tensor, keep_units: th.Tensor, surgery: Surgery) -> th.Tensor:
        """Drop input features not in ``keep_in`` and own units not in ``keep_units``.

        :return: keep-mask over this block's (pre-surgery) output features
        """
        keep_out = th.cat([keep_units, keep_in])
        surgery.select_linear_inputs_(self.linear, keep_in)
        surgery.select_(self.v, 0, keep_in)
        surgery.select_linear_outputs_(self.linear, keep_units)
        surgery.select_batch_norm_(self.bn, keep_units)
        self.gate.prune_units_(keep_units, surgery)
        return keep_out


class XiDenseNet(nn.Module):
    """A DenseNet of :class:`XiDenseBlock`; output width = input + sum of units."""

    blocks: ModuleList[XiDenseBlock]

    def __init__(self, in_features: int, units: list[int], use_xi: bool = True) -> None:
        super().__init__()
        blocks = []
        width = in_features
        for n in units:
            blocks.append(XiDenseBlock(width, n, use_xi))
            width += n
        self.blocks = ModuleList(blocks)
        self._in_features = in_features

    @property
    def in_features(self) -> int:
        return self.blocks[0].in_features if len(self.blocks) else self._in_features

    @property
    def units(self) -> list[int]:
        return [block.units for block in self.blocks]

    @property
    def out_features(self) -> int:
        return self.in_features + sum(self.units)

    @property
    def gates(self) -> list[XiGate]:
        return [block.gate for block in self.blocks]

    def forward(self, z: th.Tensor) -> th.Tensor:
        for block in self.blocks:
            z = block(z)
        return z

    def unit_keep_masks(self, theta_tol: float) -> list[th.Tensor]:
        return [gate.keep_mask(theta_tol) for gate in self.gates]

    def prune_(self, keep_in: th.Tensor, keep_units: list[th.Tensor], surgery: Surgery) -> th.Tensor:
        """Prune every block; return the keep-mask over the DenseNet's output features."""
        keep = keep_in
        for block, keep_u in zip(self.blocks, keep_units, strict=True):
            keep = block.prune_(keep, keep_u, surgery)
        if len(self.blocks) == 0:
            self._in_features = int(keep.sum())
        return keep


class OFEXiNet(nn.Module):
    """phi_o (obs -> z_o), phi_oa ([z_o, a] -> z_oa) and f_pred (z_oa -> next obs).

    :param obs_dim: d_o
    :param action_dim: d_a
    :param units_o: units per block of phi_o
    :param units_oa: units per block of phi_oa
    :param target_dim: entries of the next observation that f_pred predicts (first ``target_dim``)
    :param use_xi: gates on (OFEXiNet) or off (plain OFENet)
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        units_o: list[int],
        units_oa: list[int],
        target_dim: int | None = None,
        use_xi: bool = True,
    ) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.target_dim = obs_dim if target_dim is None else target_dim
        self.phi_o = XiDenseNet(obs_dim, units_o, use_xi)
        self.phi_oa = XiDenseNet(self.phi_o.out_features + action_dim, units_oa, use_xi)
        self.f_pred = make_linear(self.phi_oa.out_features, self.target_dim)

    @property
    def z_o_dim(self) -> int:
        return self.phi_o.out_features

    @property
    def z_oa_dim(self) -> int:
        return self.phi_oa.out_features

    def features_o(self, obs: th.Tensor) -> th.Tensor:
        """z_o = phi_o(o), eq. (10)."""
        return self.phi_o(obs)

    def features_oa(self, z_o: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """z_oa = phi_oa([z_o, a]), eq. (11)."""
        return self.phi_oa(th.cat([z_o, actions], dim=1))

    def forward(self, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """Predicted next observation f_pred(z_oa)."""
        return self.f_pred(self.features_oa(self.features_o(obs), actions))

    def pred_loss(self, obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor, reduction: str = "sum") -> th.Tensor:
        """L_pred of eq. (8): squared error of the predicted next observation.

        :param reduction: ``"sum"``: eq. (8), the squared norm over the predicted entries,
            averaged over the batch; ``"mean"``: averaged over the entries too, as the
            original OFENet code does (``target_dim`` times smaller)
        """
        squared_error = (self(obs, actions) - next_obs[:, : self.target_dim]).pow(2)
        if reduction == "sum":
            return squared_error.sum(dim=1).mean()
        if reduction == "mean":
            return squared_error.mean()
        raise ValueError(f"reduction={reduction!r} is invalid: accepted: {PRED_LOSSES}")

    def prune_(self, theta_tol: float, surgery: Surgery) -> tuple[th.Tensor, th.Tensor]:
        """Remove units with theta < theta_tol from phi_o and phi_oa and their consumers.

        :return: keep-masks over (z_o, z_oa) before surgery, for the RL networks
        """
        keep_o = self.phi_o.unit_keep_masks(theta_tol)
        keep_oa = self.phi_oa.unit_keep_masks(theta_tol)
        device = self.f_pred.weight.device
        keep_obs = th.ones(self.obs_dim, dtype=th.bool, device=device)
        keep_z_o = self.phi_o.prune_(keep_obs, keep_o, surgery)
        keep_actions = th.ones(self.action_dim, dtype=th.bool, device=device)
        keep_z_oa = self.phi_oa.prune_(th.cat([keep_z_o, keep_actions]), keep_oa, surgery)
        surgery.select_linear_inputs_(self.f_pred, keep_z_oa)
        return keep_z_o, keep_z_oa
