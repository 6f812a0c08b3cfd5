"""Pupil functions (torch, differentiable in the aberration coefficients and the pupil centre).

The compound-refractive-lens (CRL) objective of a dark-field X-ray microscope transmits a Gaussian
amplitude ``exp(-θ²/(4 NA_rms²))`` (intensity ``exp(-θ²/(2 NA_rms²))``, rms width NA_rms), cut by
its physical aperture (Simons et al., J. Synchrotron Rad. 24, 392 (2017),
doi:10.1107/S160057751602049X). Aberrations multiply it by ``exp(i Σ_j c_j Z_j(θ/θ_ap))`` with
orthonormal Noll Zernike polynomials normalised to the physical aperture half-angle θ_ap
(:mod:`scopeflow.optics.zernike`).

Angles are small: θ = λ q with q the spatial frequency in cycles/nm and λ in nm.
"""

from __future__ import annotations

import torch

from scopeflow.optics.zernike import zernike_basis

__all__ = ["circular_aperture", "gaussian_crl_amplitude", "crl_pupil"]


def circular_aperture(rho: torch.Tensor, edge_width: float = 0.0) -> torch.Tensor:
    """Disc transmission in normalised radius.

    Parameters
    ----------
    rho : torch.Tensor
        Radius over aperture radius (any shape, dimensionless).
    edge_width : float
        Width of a linear roll-off centred on ``rho = 1`` (same units as ``rho``); 0 gives a
        hard edge. A roll-off about one grid spacing wide anti-aliases the disc (its area is
        preserved) and keeps the transmission differentiable in the pupil centre.

    Returns
    -------
    torch.Tensor
        Transmission in [0, 1], same shape and dtype as ``rho``.
    """
    if edge_width <= 0:
        return (rho <= 1).to(rho.dtype)
    return torch.clamp(0.5 - (rho - 1) / edge_width, 0.0, 1.0)


def gaussian_crl_amplitude(theta: torch.Tensor, na_rms: float) -> torch.Tensor:
    """Gaussian CRL amplitude transmission ``exp(-θ²/(4 NA_rms²))`` (Simons et al. 2017).

    Parameters
    ----------
    theta : torch.Tensor
        Scattering angle from the optical axis [rad] (any shape).
    na_rms : float
        RMS numerical aperture of the lens (intensity transmission ``exp(-θ²/2NA_rms²)``) [rad].
    """
    if not na_rms > 0:
        raise ValueError(f"NA_rms must be positive, got {na_rms}")
    return torch.exp(-(theta**2) / (4 * na_rms**2))


def crl_pupil(
    qy: torch.Tensor,
    qx: torch.Tensor,
    *,
    wavelength_nm: float,
    na_rms: float,
    aperture_rad: float,
    zernike_noll: tuple[int, ...] = (),
    zernike_coeffs: torch.Tensor | None = None,
    edge_width: float = 0.0,
) -> torch.Tensor:
    """Complex CRL pupil: Gaussian apodisation x physical aperture x exp(i Σ c_j Z_j).

    Parameters
    ----------
    qy, qx : torch.Tensor
        (..., row, col) spatial frequency relative to the pupil centre [cycles/nm]; shifting the
        pupil is done by the caller (``qy - qy_shift``), which keeps it differentiable in the shift.
    wavelength_nm : float
        X-ray wavelength [nm].
    na_rms : float
        RMS numerical aperture of the Gaussian transmission [rad].
    aperture_rad : float
        Physical aperture half-angle θ_ap [rad]; also the Zernike normalisation radius.
    zernike_noll : tuple of int
        Noll indices of the aberration terms (k of them).
    zernike_coeffs : torch.Tensor, optional
        (k,) real coefficients [rad RMS over the aperture disc].
    edge_width : float
        Aperture roll-off width in normalised radius (see :func:`circular_aperture`).

    Returns
    -------
    torch.Tensor
        (..., row, col) complex pupil.
    """
    if not aperture_rad > 0:
        raise ValueError(f"aperture half-angle must be positive, got {aperture_rad}")
    q2 = qy**2 + qx**2
    # "double where": sqrt and atan2 have NaN gradients at q = 0; every term there is smooth
    # (Zernike terms with m != 0 vanish like rho^|m|), so evaluate them at a dummy point
    nonzero = q2 > 0
    theta = wavelength_nm * torch.sqrt(torch.where(nonzero, q2, 1.0)) * nonzero
    rho = theta / aperture_rad
    amplitude = gaussian_crl_amplitude(theta, na_rms) * circular_aperture(rho, edge_width)
    if zernike_coeffs is None or len(zernike_noll) == 0:
        return torch.complex(amplitude, torch.zeros_like(amplitude))
    azimuth = torch.atan2(torch.where(nonzero, qy, 0.0), torch.where(nonzero, qx, 1.0))
    basis = zernike_basis(tuple(zernike_noll), rho, azimuth)  # (k, ..., row, col)
    phase = torch.tensordot(zernike_coeffs.to(basis.dtype), basis, dims=1)
    return torch.polar(amplitude, phase)
