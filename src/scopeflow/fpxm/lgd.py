"""Landau-Ginzburg-Devonshire (LGD) thermodynamics of a ferroelectric: energy, strain, inversion.

Eighth-order Landau potential of BaTiO3 and its electrostrictive and elastic constants from
Y. L. Li, L. E. Cross, L. Q. Chen, J. Appl. Phys. 98, 064101 (2005), doi:10.1063/1.2042528
(stored with their units in ``resources/fpxm/batio3_lgd.json``).

Conventions
-----------
- P in C/m², energies in J/m³, fields in V/m, stresses in Pa, strains dimensionless.
- Electrostriction ``ε⁰_ij = Q_ijkl P_k P_l`` with Voigt Q11, Q12, Q44 and *engineering* shear:
  ``2 ε⁰_yz = Q44 P_y P_z`` (tensor ``ε⁰_yz = (Q44/2) P_y P_z``); the Li et al. value
  Q44 = 0.029 m⁴/C² is in this convention.
- Local-equilibrium inversion from one measured strain component along a unit vector ĝ (what one
  Bragg reflection gives): ``P = argmin f_L(P) - E·P + (ε_meas - ĝ·ε⁰(P)·ĝ)² / (2 s'_gg)``, the
  elastic energy of a uniaxial stress along ĝ with the other stress components relaxed
  (s'_gg the directional compliance). It is exact where the lattice is stress-free (domain
  interiors) and an approximation near walls and inclusions. Strain is even in P: P and -P give
  the same strain, so the sign must come from elsewhere (a ±E pair).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize_scalar

__all__ = [
    "load_lgd",
    "landau_energy",
    "spontaneous_polarization",
    "eigenstrain",
    "compliances",
    "directional_compliance",
    "local_equilibrium",
]

_RESOURCES = Path(__file__).resolve().parents[3] / "resources" / "fpxm"


@cache
def load_lgd(material: str = "BaTiO3") -> dict:
    """LGD coefficients of ``material`` from ``resources/fpxm/<material>_lgd.json``.

    Returns
    -------
    dict
        Coefficients (SI, see the file's ``units``) plus ``source`` and conventions.
    """
    path = _RESOURCES / f"{material.lower()}_lgd.json"
    if not path.exists():
        raise FileNotFoundError(
            f"no LGD coefficients for {material!r}: expected {path} (resources/fpxm of the repo)"
        )
    return json.loads(path.read_text())


def landau_energy(p: torch.Tensor, temperature_k: float, c: dict) -> torch.Tensor:
    """Eighth-order Landau free energy density (Li, Cross, Chen 2005, eq. 1).

    Parameters
    ----------
    p : torch.Tensor
        (..., 3) polarization [C/m²].
    temperature_k : float
        Temperature [K].
    c : dict
        Coefficients from :func:`load_lgd`.

    Returns
    -------
    torch.Tensor
        (...) energy density [J/m³], zero for P = 0.
    """
    a1 = c["alpha1_slope"] * (temperature_k - c["T0_K"])
    x1, x2, x3 = p[..., 0] ** 2, p[..., 1] ** 2, p[..., 2] ** 2
    s1 = x1 + x2 + x3
    s2 = x1**2 + x2**2 + x3**2
    s3 = x1**3 + x2**3 + x3**3
    s4 = x1**4 + x2**4 + x3**4
    pair = x1 * x2 + x2 * x3 + x1 * x3
    triple = x1 * x2 * x3
    return (
        a1 * s1
        + c["alpha11"] * s2
        + c["alpha12"] * pair
        + c["alpha111"] * s3
        + c["alpha112"] * (x1**2 * (x2 + x3) + x2**2 * (x1 + x3) + x3**2 * (x1 + x2))
        + c["alpha123"] * triple
        + c["alpha1111"] * s4
        + c["alpha1112"] * (x1**3 * (x2 + x3) + x2**3 * (x1 + x3) + x3**3 * (x1 + x2))
        + c["alpha1122"] * (x1**2 * x2**2 + x2**2 * x3**2 + x1**2 * x3**2)
        + c["alpha1123"] * triple * s1
    )


def spontaneous_polarization(temperature_k: float, c: dict) -> float:
    """Stress-free spontaneous polarization of the tetragonal phase, P along a cube axis.

    Parameters
    ----------
    temperature_k : float
        Temperature [K].
    c : dict
        Coefficients from :func:`load_lgd`.

    Returns
    -------
    float
        Ps [C/m²] (0.260 for BaTiO3 at 298 K), 0 above the Curie point.
    """

    def f(ps: float) -> float:
        p = torch.tensor([0.0, 0.0, ps], dtype=torch.float64)
        return float(landau_energy(p, temperature_k, c))

    res = minimize_scalar(f, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-10})
    return float(res.x) if f(res.x) < 0 else 0.0


def eigenstrain(p, c: dict):
    """Electrostrictive (stress-free) strain tensor ``ε⁰_ij = Q_ijkl P_k P_l``.

    Parameters
    ----------
    p : numpy.ndarray or torch.Tensor
        (..., 3) polarization [C/m²].
    c : dict
        Coefficients (Q11, Q12, Q44 in the engineering-shear convention, module docstring).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        (..., 3, 3) symmetric strain tensor, same array type as ``p``.
    """
    xp = torch if isinstance(p, torch.Tensor) else np
    q11, q12, half_q44 = c["Q11"], c["Q12"], 0.5 * c["Q44"]
    sq = p**2
    total = sq.sum(-1)
    diag = [q11 * sq[..., i] + q12 * (total - sq[..., i]) for i in range(3)]
    e01 = half_q44 * p[..., 0] * p[..., 1]
    e02 = half_q44 * p[..., 0] * p[..., 2]
    e12 = half_q44 * p[..., 1] * p[..., 2]
    rows = [
        xp.stack([diag[0], e01, e02], -1),
        xp.stack([e01, diag[1], e12], -1),
        xp.stack([e02, e12, diag[2]], -1),
    ]
    return xp.stack(rows, -2)


def compliances(c: dict) -> tuple[float, float, float]:
    """Cubic elastic compliances (s11, s12, s44) [1/Pa] from the stiffnesses c11, c12, c44."""
    c11, c12, c44 = c["c11"], c["c12"], c["c44"]
    den = (c11 - c12) * (c11 + 2 * c12)
    return (c11 + c12) / den, -c12 / den, 1.0 / c44


def directional_compliance(g_unit, c: dict) -> float:
    """Compliance s'_gg of a cubic crystal for uniaxial stress along unit vector ĝ [1/Pa].

    ``s' = s11 - 2 (s11 - s12 - s44/2)(g1²g2² + g2²g3² + g3²g1²)`` (Nye, *Physical Properties
    of Crystals*, 1957, ch. VIII).
    """
    g = np.asarray(g_unit, dtype=float)
    g = g / np.linalg.norm(g)
    s11, s12, s44 = compliances(c)
    cross = g[0] ** 2 * g[1] ** 2 + g[1] ** 2 * g[2] ** 2 + g[2] ** 2 * g[0] ** 2
    return s11 - 2 * (s11 - s12 - 0.5 * s44) * cross


def _grad_hess(energy, p: torch.Tensor, eps: torch.Tensor):
    """Per-pixel gradient (K, 3) and Hessian (K, 3, 3) of a pixel-separable energy."""
    with torch.enable_grad():
        pv = p.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(pv, eps).sum(), pv, create_graph=True)
        rows = [torch.autograd.grad(grad[:, i].sum(), pv, retain_graph=i < 2)[0] for i in range(3)]
    return grad.detach(), torch.stack(rows, 1).detach()


def local_equilibrium(
    p_init: torch.Tensor,
    temperature_k: float,
    c: dict,
    *,
    strain_g: torch.Tensor | None = None,
    g_unit=(0.0, 0.0, 1.0),
    efield=(0.0, 0.0, 0.0),
    iterations: int = 50,
    tol: float = 1e-10,
) -> torch.Tensor:
    """Polarization at local equilibrium, per pixel, by damped Newton iterations.

    Minimises ``f_L(P) - E·P + (ε_meas - ĝ·ε⁰(P)·ĝ)² / (2 s'_gg)`` (module docstring); without
    ``strain_g`` the elastic term is dropped (stress-free response to E).

    Parameters
    ----------
    p_init : torch.Tensor
        (K, 3) starting polarization [C/m²]; it selects the variant (basin) and the sign.
    temperature_k : float
        Temperature [K].
    c : dict
        Coefficients from :func:`load_lgd`.
    strain_g : torch.Tensor, optional
        (K,) measured strain along ĝ (absolute, relative to the cubic prototype).
    g_unit : sequence of 3 float
        Direction of the measured strain (the reflection's G), crystal axes.
    efield : sequence of 3 float
        Applied electric field [V/m].
    iterations : int
        Maximum Newton iterations (quadratic convergence near the minimum).
    tol : float
        Stop when no pixel's P moves by more than this [C/m²].

    Returns
    -------
    torch.Tensor
        (K, 3) float64 polarization [C/m²].
    """
    g = torch.tensor(g_unit, dtype=torch.float64)
    g = g / torch.linalg.norm(g)
    e_vec = torch.tensor(efield, dtype=torch.float64)
    inv_s = 1.0 / directional_compliance(g.numpy(), c)
    p = p_init.to(torch.float64).clone()
    eps = (
        torch.zeros(p.shape[0], dtype=torch.float64)
        if strain_g is None
        else strain_g.to(torch.float64)
    )
    use_strain = strain_g is not None

    def energy(pv: torch.Tensor, ev: torch.Tensor) -> torch.Tensor:
        f = landau_energy(pv, temperature_k, c) - (e_vec * pv).sum(-1)
        if use_strain:
            e0 = eigenstrain(pv, c)
            e_g = (g[:, None] * e0 * g[None, :]).sum((-1, -2))
            f = f + 0.5 * inv_s * (ev - e_g) ** 2
        return f

    eye = torch.eye(3, dtype=torch.float64)
    for _ in range(iterations):
        grad, hess = _grad_hess(energy, p, eps)
        # Gershgorin bound: the smallest shift that makes the Hessian positive definite
        diag = torch.diagonal(hess, dim1=-2, dim2=-1)
        off = hess.abs().sum(-1) - diag.abs()
        scale = diag.abs().amax(-1, keepdim=True)
        shift = torch.clamp(-(diag - off).amin(-1, keepdim=True) + 1e-3 * scale, min=0.0)
        step = -torch.linalg.solve(hess + shift[..., None] * eye, grad)
        f0 = energy(p, eps)
        accepted = torch.zeros(p.shape[0], dtype=torch.bool)
        new_p = p.clone()
        for alpha in (1.0, 0.5, 0.25, 0.125, 0.0625):
            trial = p + alpha * step
            ok = (energy(trial, eps) <= f0) & ~accepted
            new_p[ok] = trial[ok]
            accepted |= ok
        done = float((new_p - p).abs().max()) < tol
        p = new_p
        if done:
            break
    return p
