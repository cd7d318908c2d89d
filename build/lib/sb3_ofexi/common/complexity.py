"""Expected complexity of OFEXiNet and the RL networks (paper section 3.2).

Everything is a differentiable function of the layer norms ``n_l = ||theta_l||_1``.
Two ways turn ``nu * C`` into a theta-gradient (``regulariser=``, SPEC section 4):

* ``"paper"``: the per-layer coefficients ``-log(gamma_l) / nu`` of eqs. (28), (29), (32),
  evaluated at the current thetas and held constant within the step, times ``n_l``.
  Their weighted sum equals ``C`` minus its value at all norms 0 (eq. 30's constant), but
  each cross product ``n_i * n_l`` (i < l) is charged to the later layer only.
* ``"autograd"``: the exact gradient of ``C``.

At thetas in {0, 1} each term equals the parameter count of the physically pruned
layer under the paper's conventions: "+3" per DenseNet unit (bias + BN scale and
shift), "1+" per DenseNet input (the diagonal V), "1+" per MLP input (the bias).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch as th
from torch import nn

Scalar = th.Tensor | float

#: accepted values of ``regulariser=``
REGULARISERS = ("paper", "autograd")


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


def _detached(x: Scalar) -> Scalar:
    return x.detach() if isinstance(x, th.Tensor) else x


def _weighted_sum(coefficients: Sequence[Scalar], norms: Sequence[Scalar]) -> Scalar:
    """sum_l coef_l * n_l with every coefficient held constant (detached)."""
    total: Scalar = 0.0
    for coef, n_l in zip(coefficients, norms, strict=True):
        total = total + _detached(coef) * n_l
    return total


def densenet_paper_coefficients(d_in: Scalar, norms: Sequence[Scalar], downstream: Scalar) -> list[Scalar]:
    """``-log(gamma_l) / (nu * scale)`` of eqs. (28)/(29) for one DenseNet::

        d_in + sum_{i<l} n_i + (L - l) + 3 + downstream

    ``L - l`` counts the V entries this unit adds to later blocks; ``downstream`` is the
    per-unit cost in the consumers of the DenseNet's output (f_pred, phi_oa, first layers).
    """
    n_blocks = len(norms)
    coefficients: list[Scalar] = []
    width: Scalar = d_in
    for index, n_l in enumerate(norms):
        coefficients.append(width + (n_blocks - 1 - index) + 3 + downstream)
        width = width + _detached(n_l)
    return coefficients


def mlp_paper_coefficients(d_in: Scalar, norms: Sequence[Scalar], d_out: int) -> list[Scalar]:
    """``-log(gamma_l^x) / nu_x`` of eq. (32): ``1 + D_i`` for the first hidden layer,
    ``1 + n_{l-1}`` for the others, plus ``D_o`` for the last (both when there is one layer)."""
    coefficients: list[Scalar] = []
    previous: Scalar = d_in
    for n_l in norms:
        coefficients.append(1 + previous)
        previous = _detached(n_l)
    if coefficients:
        coefficients[-1] = coefficients[-1] + d_out
    return coefficients


def mlp_regulariser(d_in: Scalar, norms: Sequence[Scalar], d_out: int, mode: str) -> Scalar:
    """The theta-dependent part of ``C_x`` (eq. 31) in the chosen convention (``nu_x`` not applied)."""
    if mode == "autograd":
        return mlp_complexity(d_in, norms, d_out)
    return _weighted_sum(mlp_paper_coefficients(d_in, norms, d_out), norms)


@dataclass
class OFEComplexity:
    """The terms of eq. (27), and the inputs they were computed from."""

    c_o: Scalar  # eq. (21)
    c_oa: Scalar  # eq. (22)
    c_pred: Scalar  # eq. (23)
    c_pi_ofe: Scalar  # eq. (24) with D_i of eq. (25)
    c_q_ofe: list[Scalar]  # eq. (24) with D_i of eq. (26), one per critic
    rho: float
    d_o: int = 0
    d_a: int = 0
    target_dim: int = 0
    norms_o: Sequence[Scalar] = ()
    norms_oa: Sequence[Scalar] = ()
    first_pi: Scalar = 0.0
    first_q: Sequence[Scalar] = ()

    @property
    def total(self) -> Scalar:
        """C_OFE = C_o + C_pi,OFE + rho * (C_oa + C_pred + sum_q C_q,OFE), eq. (27)."""
        return self.c_o + self.c_pi_ofe + self.rho * (self.c_oa + self.c_pred + sum(self.c_q_ofe))

    def paper_coefficients(self) -> tuple[list[Scalar], list[Scalar]]:
        """``-log(gamma_l) / nu_OFE`` of eq. (28) for phi_o and eq. (29) for phi_oa.

        Eq. (28) sums ``rho * ||theta_1^x||`` over X_o minus pi (SAC-v1's V network); C_q,OFE
        (eqs. 24, 26) charges the critics' first layers for every unit of phi_o too, so we
        read that sum as over X minus pi (a likely typo in the paper): the critics are in it.
        """
        first_q = sum(self.first_q)
        z_o = self.d_o + sum(_detached(n) for n in self.norms_o)
        # per phi_o unit, outside phi_o: its V entry and input column in every phi_oa block
        # (rho), its column in f_pred (rho), in the actor's and (rho) the critics' first layers
        downstream_o = self.first_pi + self.rho * (len(self.norms_oa) + self.target_dim + first_q)
        coef_o = densenet_paper_coefficients(self.d_o, self.norms_o, downstream_o)
        coef_oa = [
            self.rho * c for c in densenet_paper_coefficients(z_o + self.d_a, self.norms_oa, self.target_dim + first_q)
        ]
        return coef_o, coef_oa

    def regulariser_parts(self, mode: str) -> tuple[Scalar, Scalar]:
        """:meth:`regulariser` split into the terms whose gradient reaches phi_o's and phi_oa's thetas.

        Their gradients add up to :meth:`regulariser`'s; a size budget weights them apart.
        """
        if mode == "autograd":  # C with the other DenseNet's norms as constants, once per DenseNet
            fixed_o, fixed_oa = [_detached(n) for n in self.norms_o], [_detached(n) for n in self.norms_oa]
            args = (self.d_o, self.d_a, self.target_dim)
            part_o = ofe_complexity(*args, self.norms_o, fixed_oa, self.first_pi, self.first_q, self.rho).total
            part_oa = ofe_complexity(*args, fixed_o, self.norms_oa, self.first_pi, self.first_q, self.rho).total
            return part_o, part_oa
        coef_o, coef_oa = self.paper_coefficients()
        return _weighted_sum(coef_o, self.norms_o), _weighted_sum(coef_oa, self.norms_oa)

    def regulariser(self, mode: str) -> Scalar:
        """The theta-dependent part of C_OFE in the chosen convention (``nu_OFE`` not applied)."""
        if mode == "autograd":
            return self.total
        coef_o, coef_oa = self.paper_coefficients()
        return _weighted_sum(coef_o, self.norms_o) + _weighted_sum(coef_oa, self.norms_oa)


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
        d_o=d_o,
        d_a=d_a,
        target_dim=target_dim,
        norms_o=list(norms_o),
        norms_oa=list(norms_oa),
        first_pi=first_pi,
        first_q=list(first_q),
    )


def count_params(module: nn.Module) -> int:
    """Trainable weights of ``module``: every parameter except the thetas (SPEC section 7).

    BN running statistics are buffers, so they are not counted either.
    """
    return sum(p.numel() for name, p in module.named_parameters() if not name.endswith("theta"))


def mlp_param_count(d_in: int, hidden: list[int], d_out: int) -> int:
    """Weights and biases of a fully connected network (the V network of Table 4's counts)."""
    widths = [d_in, *hidden, d_out]
    return sum((w_in + 1) * w_out for w_in, w_out in zip(widths[:-1], widths[1:]))
