"""Wavelengths and interaction constants: the one implementation in scopeflow.

Relativistic electron wavelength and interaction constant (e.g. Kirkland, *Advanced Computing in
Electron Microscopy*, 2nd ed., Springer 2010, doi:10.1007/978-1-4419-6533-2, eqs. 2.5 and 5.6);
X-ray wavelength lambda = h c / E.
"""

from __future__ import annotations

import math

from scipy import constants as _c

__all__ = [
    "electron_wavelength",
    "interaction_constant",
    "xray_wavelength",
    "FLUX_QUANTUM_T_NM2",
    "HBAR_OVER_E_T_NM2",
]

#: Magnetic flux quantum h/(2e) in T nm^2 (2.0678e3).
FLUX_QUANTUM_T_NM2 = _c.h / (2 * _c.e) * 1e18
#: hbar/e in T nm^2 (658.2), so that B_x t = (hbar/e) dphi/dy.
HBAR_OVER_E_T_NM2 = _c.hbar / _c.e * 1e18


def electron_wavelength(energy_ev: float) -> float:
    """Relativistic electron wavelength.

    Parameters
    ----------
    energy_ev : float
        Accelerating voltage times e, in eV (e.g. 200e3).

    Returns
    -------
    float
        Wavelength in nm (0.0025079 nm at 200 keV).
    """
    if not energy_ev > 0:
        raise ValueError(f"electron energy must be positive, got {energy_ev} eV")
    e0 = _c.m_e * _c.c**2
    ek = energy_ev * _c.e
    lam_m = _c.h * _c.c / math.sqrt(ek * (2 * e0 + ek))
    return lam_m * 1e9


def interaction_constant(energy_ev: float) -> float:
    """Electron interaction constant sigma (phase per projected potential).

    Parameters
    ----------
    energy_ev : float
        Beam energy in eV.

    Returns
    -------
    float
        sigma in rad / (V nm) (about 7.29e-3 rad/(V nm) at 200 keV).
    """
    lam_m = electron_wavelength(energy_ev) * 1e-9
    e0 = _c.m_e * _c.c**2
    gamma = 1 + energy_ev * _c.e / e0
    sigma = 2 * math.pi * _c.m_e * gamma * _c.e * lam_m / _c.h**2  # rad / (V m)
    return sigma * 1e-9


def xray_wavelength(energy_ev: float) -> float:
    """X-ray wavelength lambda = h c / E.

    Parameters
    ----------
    energy_ev : float
        Photon energy in eV (e.g. 17e3).

    Returns
    -------
    float
        Wavelength in nm (0.072932 nm at 17 keV).
    """
    if not energy_ev > 0:
        raise ValueError(f"photon energy must be positive, got {energy_ev} eV")
    return _c.h * _c.c / (energy_ev * _c.e) * 1e9
