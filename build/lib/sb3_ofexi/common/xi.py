"""The xi gate of XiNets (paper section 2.1, eqs. 4-7; SPEC section 3)."""

from __future__ import annotations

from collections.abc import Iterator

import torch as th
from torch import nn

from sb3_ofexi.common.surgery import Surgery


class XiGate(nn.Module):
    """Multiplies each unit's output by ``xi_k ~ Bernoulli(theta_k)``.

    * training mode: one realisation of xi per forward pass, shared by the whole
      minibatch (a sub-network is trained on the minibatch); the straight-through
      estimator of eq. (7) makes ``dL/dtheta_k = dL/dxi_k``.
    * evaluation mode: units are scaled by theta (no sampling).
    * ``active=False`` (the OFE baseline): the gate is the identity and theta stays 1.

    :param n_units: number of gated units
    :param active: whether the gate samples / scales at all
    """

    def __init__(self, n_units: int, active: bool = True) -> None:
        super().__init__()
        self.active = active
        self.theta = nn.Parameter(th.ones(n_units))

    @property
    def n_units(self) -> int:
        return self.theta.shape[0]

    def forward(self, x: th.Tensor) -> th.Tensor:
        if not self.active:
            return x
        theta = self.theta
        if self.training:
            # eq. (7): forward uses the sample, backward sees d/dxi as d/dtheta
            xi = theta + (th.bernoulli(theta.detach()) - theta).detach()
            return x * xi
        return x * theta

    def project_(self) -> None:
        """Projected gradient step: clamp theta into [0, 1] (eq. 6)."""
        self.theta.data.clamp_(0.0, 1.0)

    def round_(self) -> None:
        """Round every theta to 0 or 1 (the last phase of the schedule)."""
        self.theta.data.copy_((self.theta.data >= 0.5).to(self.theta.dtype))

    def keep_mask(self, theta_tol: float) -> th.Tensor:
        """Units that survive a prune: ``theta >= theta_tol`` (inactive gates keep all)."""
        if not self.active:
            return th.ones_like(self.theta, dtype=th.bool)
        return self.theta.detach() >= theta_tol

    def prune_units_(self, keep: th.Tensor, surgery: Surgery) -> None:
        surgery.select_(self.theta, 0, keep)

    def extra_repr(self) -> str:
        return f"n_units={self.n_units}, active={self.active}"


def xi_gates(module: nn.Module) -> Iterator[XiGate]:
    """All gates inside ``module``, in registration order."""
    return (m for m in module.modules() if isinstance(m, XiGate))
