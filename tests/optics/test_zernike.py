"""Zernike polynomials: Noll indexing and orthonormality on the unit disc."""

import math

import numpy as np
import pytest
import torch

from scopeflow.optics.zernike import noll_to_nm, zernike, zernike_basis

# Noll (1976), Table I: j -> (n, m) with m > 0 for cos and m < 0 for sin terms
NOLL_TABLE = {
    1: (0, 0),
    2: (1, 1),
    3: (1, -1),
    4: (2, 0),
    5: (2, -2),
    6: (2, 2),
    7: (3, -1),
    8: (3, 1),
    9: (3, -3),
    10: (3, 3),
    11: (4, 0),
    12: (4, 2),
    13: (4, -2),
    14: (4, 4),
    15: (4, -4),
    22: (6, 0),
}


@pytest.mark.parametrize("j", sorted(NOLL_TABLE))
def test_noll_indices(j):
    assert noll_to_nm(j) == NOLL_TABLE[j]


def test_noll_rejects_zero():
    with pytest.raises(ValueError):
        noll_to_nm(0)


def test_orthonormal_on_disc():
    # Gauss-Legendre in r (exact for polynomials up to degree 2*40-1 in r, enough for n <= 6
    # products times the r Jacobian) and a uniform grid in theta (exact for |m| sums < 64):
    # the Gram matrix is the identity to rounding error.
    x, w = np.polynomial.legendre.leggauss(40)
    r = 0.5 * (x + 1)
    wr = 0.5 * w * r
    th = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    rr, tt = np.meshgrid(r, th, indexing="ij")
    weight = torch.from_numpy(np.outer(wr, np.full(th.size, 2 * np.pi / th.size)))
    basis = zernike_basis(tuple(range(1, 29)), torch.from_numpy(rr), torch.from_numpy(tt))
    gram = torch.einsum("irt,jrt,rt->ij", basis, basis, weight) / math.pi
    assert torch.allclose(gram, torch.eye(28, dtype=gram.dtype), atol=1e-10)


def test_known_values():
    rho = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    th = torch.zeros(3, dtype=torch.float64)
    # defocus sqrt(3)(2 rho^2 - 1); horizontal coma sqrt(8)(3 rho^3 - 2 rho) cos(theta)
    assert torch.allclose(zernike(4, rho, th), math.sqrt(3) * (2 * rho**2 - 1))
    assert torch.allclose(zernike(8, rho, th), math.sqrt(8) * (3 * rho**3 - 2 * rho))
