"""Expected complexity of OFEXiNet and the RL networks (paper section 3.2).

Everything is a differentiable function of the layer norms ``n_l = ||theta_l||_1``;
the regulariser is ``nu * C`` and autograd differentiates it, so the log-gamma
formulas (28), (29), (32) are never hand-coded (SPEC section 4).

At thetas in {0, 1} each term equals the parameter count of the physically pruned
layer under the paper's conventions: "+3" per DenseNet unit (bias + BN scale and
shift), "1+" per DenseNet input (the diagonal V), "1+" per MLP input (the bias).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch as th

Scalar = th.Tensor | float


def theta_norm(theta: th.Tensor) -> th.Tensor:
    """||theta||_1 (theta lives in [0, 1], so this is the sum)."""
    return theta.sum()


def densenet_complexity(d_in: Scalar, norms: Sequence[Scalar]) -> Scalar:
    """Eq. (21) (``d_in = d_o``) and eq. (22) (``d_in = d_o + sum n^o + d_a``)::

    sum_l [(d_in + sum_{i<l} n_i) * (1 + n_l) + 3 * n_l]
    """
    total: Scalar = 0.0
    width: Scalar = d_in
    for n_l in norms:
        total = total + width * (1 + n_l) + 3 * n_l
        width = width + n_l
    return total


def first_layer_complexity(d_in: Scalar, n_first: Scalar) -> Scalar:
    """Eq. (24): ``(1 + D_i^x) * ||theta_1^x||`` (weights and biases of the first layer)."""
    return (1 + d_in) * n_first


def mlp_complexity(d_in: Scalar, norms: Sequence[Scalar], d_out: int) -> Scalar:
    """Eq. (31): a fully connected network with gated hidden layers and a fixed output width."""
    total: Scalar = 0.0
    width: Scalar = d_in
    for n_l in [*norms, d_out]:
        total = total + (1 + width) * n_l
        width = n_l
    return total


@dataclass
class OFEComplexity:
    """The terms of eq. (27)."""

    c_o: Scalar  # eq. (21)
    c_oa: Scalar  # eq. (22)
    c_pred: Scalar  # eq. (23)
    c_pi_ofe: Scalar  # eq. (24) with D_i of eq. (25)
    c_q_ofe: list[Scalar]  # eq. (24) with D_i of eq. (26), one per critic
    rho: float

    @property
    def total(self) -> Scalar:
        """C_OFE = C_o + C_pi,OFE + rho * (C_oa + C_pred + sum_q C_q,OFE), eq. (27)."""
        return self.c_o + self.c_pi_ofe + self.rho * (self.c_oa + self.c_pred + sum(self.c_q_ofe))


def ofe_complexity(
    d_o: int,
    d_a: int,
    target_dim: int,
    norms_o: Sequence[Scalar],
    norms_oa: Sequence[Scalar],
    first_pi: Scalar,
    first_q: Sequence[Scalar],
    rho: float,
) -> OFEComplexity:
    """Expected complexity of the OFEXiNet and the layers that read its features.

    :param first_pi: ||theta_1^pi|| (or the actor's output width if it has no hidden layer)
    :param first_q: the same for each critic
    """
    d_z_o = d_o + sum(norms_o)  # eq. (25)
    d_z_oa = d_z_o + d_a + sum(norms_oa)  # eq. (26)
    return OFEComplexity(
        c_o=densenet_complexity(d_o, norms_o),
        c_oa=densenet_complexity(d_z_o + d_a, norms_oa),
        # eq. (23), with the predicted width (the paper predicts all d_o entries)
        c_pred=(1 + d_z_oa) * target_dim,
        c_pi_ofe=first_layer_complexity(d_z_o, first_pi),
        c_q_ofe=[first_layer_complexity(d_z_oa, n) for n in first_q],
        rho=rho,
    )
