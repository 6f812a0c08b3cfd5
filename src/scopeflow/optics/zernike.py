"""Zernike polynomials on the unit disc, Noll indexing, orthonormal (torch, differentiable).

Indexing follows R. J. Noll, "Zernike polynomials and atmospheric turbulence", J. Opt. Soc. Am.
66, 207 (1976), doi:10.1364/JOSA.66.000207: j = 1 piston, 2 tilt x (cos), 3 tilt y (sin),
4 defocus, 5 oblique astigmatism (sin 2θ), 6 vertical astigmatism (cos 2θ), 7 vertical coma
(sin θ), 8 horizontal coma (cos θ), 9/10 trefoil, 11 primary spherical, ... Even j carry
cos(mθ), odd j sin(mθ).

Normalisation (Noll): ``(1/π) ∫_disc Z_i Z_j dA = δ_ij``, so a coefficient is the RMS of that
term over the disc (in rad when the pupil phase is in rad). ``θ = atan2(y, x)`` with x along
columns and y along rows of the grids passed in.
"""

from __future__ import annotations

import math

import torch

__all__ = ["noll_to_nm", "radial_polynomial", "zernike", "zernike_basis"]


def noll_to_nm(j: int) -> tuple[int, int]:
    """Noll index -> (radial order n, signed azimuthal order m).

    Parameters
    ----------
    j : int
        Noll index, >= 1.

    Returns
    -------
    (int, int)
        ``(n, m)``; ``m > 0`` is a cos(mθ) term, ``m < 0`` a sin(|m|θ) term.
    """
    if j < 1:
        raise ValueError(f"Noll index must be >= 1, got {j}")
    n = 0
    while (n + 1) * (n + 2) // 2 < j:
        n += 1
    k = j - n * (n + 1) // 2 - 1  # position inside radial order n, 0..n
    m_abs = 2 * ((k + 1) // 2) if n % 2 == 0 else 2 * (k // 2) + 1
    if m_abs == 0:
        return n, 0
    return n, (m_abs if j % 2 == 0 else -m_abs)


def radial_polynomial(n: int, m: int, rho: torch.Tensor) -> torch.Tensor:
    """Zernike radial polynomial R_n^|m|(rho) (unnormalised, R(1) = 1).

    Parameters
    ----------
    n, m : int
        Radial and azimuthal order, ``n - |m|`` even and non-negative.
    rho : torch.Tensor
        Normalised radius (any shape), 1 at the disc edge.
    """
    m = abs(m)
    if (n - m) % 2 or m > n:
        raise ValueError(f"invalid Zernike orders n={n}, m={m}")
    out = torch.zeros_like(rho)
    for s in range((n - m) // 2 + 1):
        c = (-1) ** s * math.factorial(n - s)
        c /= math.factorial(s) * math.factorial((n + m) // 2 - s) * math.factorial((n - m) // 2 - s)
        out = out + c * rho ** (n - 2 * s)
    return out


def zernike(j: int, rho: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Orthonormal Zernike polynomial Z_j (Noll) evaluated at (rho, theta).

    Parameters
    ----------
    j : int
        Noll index.
    rho : torch.Tensor
        Normalised radius (any shape); values beyond 1 are evaluated by the same polynomial
        (callers cut them with the aperture).
    theta : torch.Tensor
        Azimuth in rad, same shape as ``rho``.

    Returns
    -------
    torch.Tensor
        Z_j, same shape, RMS 1 over the unit disc.
    """
    n, m = noll_to_nm(j)
    radial = radial_polynomial(n, m, rho)
    if m == 0:
        return math.sqrt(n + 1) * radial
    norm = math.sqrt(2 * (n + 1))
    if m > 0:
        return norm * radial * torch.cos(m * theta)
    return norm * radial * torch.sin(-m * theta)


def zernike_basis(
    noll: tuple[int, ...] | list[int], rho: torch.Tensor, theta: torch.Tensor
) -> torch.Tensor:
    """Stack of Zernike polynomials.

    Parameters
    ----------
    noll : sequence of int
        Noll indices (k of them).
    rho, theta : torch.Tensor
        Normalised radius and azimuth [rad], same shape S.

    Returns
    -------
    torch.Tensor
        (k, *S) polynomials; ``torch.tensordot(coeffs, basis, 1)`` gives the phase [rad] for
        coefficients in rad RMS.
    """
    if len(noll) == 0:
        return torch.zeros((0, *rho.shape), dtype=rho.dtype, device=rho.device)
    return torch.stack([zernike(int(j), rho, theta) for j in noll])
