"""Objective-lens transfer function for electron imaging (torch, differentiable, batched).

Sign convention (kept by every scopeflow technique and stated in every store):
the defocus ``defocus > 0`` is **overfocus**, i.e. the image is the exit wave propagated
*downstream* by ``defocus``. The aberration phase follows the Krivanek/Haider notation with
``C1 = defocus``,

    chi(q) = pi lambda q^2 [df + A1 cos 2(phi_q - phi_A1)] + (pi / 2) Cs lambda^3 q^4,

and the coherent transfer function is ``T(q) = exp(-i chi(q)) E(q)``, so that with
``A1 = Cs = 0`` it is exactly the Fresnel propagator ``exp(-i pi lambda df q^2)`` of
:mod:`scopeflow.optics.propagate`. (Kirkland's book uses ``df > 0`` for underfocus; his chi is
this one with ``df -> -df``.) ``q`` is in cycles per length (not ``2 pi / length``).

Partial coherence enters as the quasi-coherent envelope of Frank (Optik 38, 519 (1973)) and
Wade & Frank (Optik 49, 81 (1977)), as used for LTEM by Zhou et al., npj Comput. Mater. 7, 141
(2021), doi:10.1038/s41524-021-00600-x (their code carries a sign slip in the temporal term,
fixed here: both terms *damp*):

    E(q) = exp{-[ (pi lambda Delta)^2 q^4 / 2 + (theta_c / (2 lambda))^2 |grad_q chi|^2 ] / u},
    u = 1 + 2 (pi theta_c Delta)^2 q^2,

with ``theta_c`` the illumination semi-angle [rad] and ``Delta`` the defocus spread (standard
deviation) [nm]. Without astigmatism ``|grad chi| / (2 pi) = lambda q (df + Cs lambda^2 q^2)``,
which gives the textbook ``(pi theta_c / lambda)^2 (Cs lambda^3 q^3 + df lambda q)^2``.

All functions broadcast over leading batch dimensions: ``defocus`` etc. may be tensors of shape
``(n, 1, 1)`` against ``(rows, cols)`` frequency grids.
"""

from __future__ import annotations

import math

import torch

__all__ = ["aberration_phase", "coherence_envelope", "transfer_function"]


def _as_tensor(x, ref: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x, dtype=ref.dtype, device=ref.device)


def _is_zero(x) -> bool:
    """True for a plain number equal to 0 (tensors, which may be refined, are never skipped)."""
    return isinstance(x, (int, float)) and x == 0


def _astig_terms(qy, qx, astig_angle):
    """``(qx^2 - qy^2) cos 2a + 2 qx qy sin 2a`` = ``q^2 cos 2(phi_q - a)``."""
    a2 = 2 * _as_tensor(astig_angle, qx)
    return (qx**2 - qy**2) * torch.cos(a2) + 2 * qx * qy * torch.sin(a2), a2


def aberration_phase(
    qy: torch.Tensor,
    qx: torch.Tensor,
    wavelength: float,
    defocus,
    cs=0.0,
    astig=0.0,
    astig_angle=0.0,
) -> torch.Tensor:
    """Aberration phase chi(q) (overfocus-positive defocus, see module docstring).

    Parameters
    ----------
    qy, qx : (rows, cols) torch.Tensor
        Spatial frequencies [1/nm] (cycles per nm), e.g. from
        :func:`scopeflow.optics.fourier.freq_grid`.
    wavelength : float
        Electron wavelength [nm].
    defocus : float or torch.Tensor broadcastable to (..., rows, cols)
        Defocus C1 [nm]; > 0 is overfocus.
    cs : float or torch.Tensor
        Spherical aberration C3 [nm] (1 mm = 1e6 nm).
    astig : float or torch.Tensor
        Two-fold astigmatism amplitude A1 [nm] (defocus varies as ``df + A1 cos 2(phi - a)``).
    astig_angle : float or torch.Tensor
        Astigmatism azimuth a [rad], measured from +qx (column axis) toward +qy (row axis).

    Returns
    -------
    chi : (..., rows, cols) torch.Tensor [rad]
    """
    q2 = qx**2 + qy**2
    lam = float(wavelength)
    chi = math.pi * lam * defocus * q2 + 0.5 * math.pi * cs * lam**3 * q2**2
    if _is_zero(astig):
        return chi
    astig_q2, _ = _astig_terms(qy, qx, astig_angle)
    return chi + math.pi * lam * astig * astig_q2


def coherence_envelope(
    qy: torch.Tensor,
    qx: torch.Tensor,
    wavelength: float,
    defocus,
    cs=0.0,
    theta_c=0.0,
    defocus_spread=0.0,
    astig=0.0,
    astig_angle=0.0,
) -> torch.Tensor:
    """Partial-coherence envelope E(q) in the quasi-coherent approximation (module docstring).

    Parameters
    ----------
    qy, qx : (rows, cols) torch.Tensor
        Spatial frequencies [1/nm].
    wavelength : float
        Electron wavelength [nm].
    defocus, cs, astig, astig_angle
        As in :func:`aberration_phase` [nm, nm, nm, rad].
    theta_c : float or torch.Tensor
        Illumination (beam-divergence) semi-angle [rad].
    defocus_spread : float or torch.Tensor
        Standard deviation of the focal spread Delta [nm].

    Returns
    -------
    E : (..., rows, cols) torch.Tensor, real, in (0, 1]
    """
    lam = float(wavelength)
    q2 = qx**2 + qy**2
    radial = defocus + cs * lam**2 * q2
    if _is_zero(astig):  # |grad chi| / (2 pi lambda) = q |radial|: skip the astigmatic terms
        grad2 = (2 * math.pi * lam) ** 2 * radial**2 * q2
    else:
        a2 = 2 * _as_tensor(astig_angle, qx)
        c, s = torch.cos(a2), torch.sin(a2)
        # grad_q chi / (2 pi lambda)
        gx = radial * qx + astig * (qx * c + qy * s)
        gy = radial * qy + astig * (qx * s - qy * c)
        grad2 = (2 * math.pi * lam) ** 2 * (gx**2 + gy**2)
    spatial = (theta_c / (2 * lam)) ** 2 * grad2
    temporal = 0.5 * (math.pi * lam * defocus_spread) ** 2 * q2**2
    u = 1 + 2 * (math.pi * theta_c * defocus_spread) ** 2 * q2
    return torch.exp(-(temporal + spatial) / u)


def transfer_function(
    qy: torch.Tensor,
    qx: torch.Tensor,
    wavelength: float,
    defocus,
    cs=0.0,
    theta_c=0.0,
    defocus_spread=0.0,
    astig=0.0,
    astig_angle=0.0,
    *,
    dtype: torch.dtype = torch.complex64,
) -> torch.Tensor:
    """Coherent transfer function ``T(q) = exp(-i chi(q)) E(q)``.

    Parameters are those of :func:`aberration_phase` and :func:`coherence_envelope`.
    Differentiable in every tensor argument (defocus, Cs, theta_c, astigmatism...).

    Returns
    -------
    T : (..., rows, cols) torch.Tensor, complex (``dtype``, complex64 by default)
    """
    chi = aberration_phase(qy, qx, wavelength, defocus, cs, astig, astig_angle)
    env = coherence_envelope(
        qy, qx, wavelength, defocus, cs, theta_c, defocus_spread, astig, astig_angle
    )
    return torch.polar(env, -chi).to(dtype)
