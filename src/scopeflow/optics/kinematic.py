"""Kinematic electron diffraction: form factors, structure factors, excitation errors.

Shared helpers for techniques where dynamical scattering is not the point (tomo4d):

- elastic electron scattering factors of neutral atoms from the five-Gaussian parametrisation of
  Peng, Ren, Dudarev & Whelan, Acta Cryst. A52, 257 (1996), doi:10.1107/S0108767395014371
  (table stored in ``resources/tomo4d/peng1996_elastic.json``);
- a minimal CIF reader (cell, symmetry operators ``x,y,z`` form, atom sites) that expands the
  asymmetric unit into the full cell;
- structure factors ``F(hkl) = sum_j f_j(g) exp(2 pi i h.x_j)`` [Å], the reciprocal basis and the
  excitation error of a reciprocal-lattice point for a beam along +z.

Conventions: reciprocal vectors in cycles/Å (``|g| = 1/d``), real basis rows ``a, b, c`` in Å,
reciprocal basis rows ``a*, b*, c*`` with ``a_i . a*_j = delta_ij``.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import numpy as np

__all__ = [
    "Structure",
    "read_cif",
    "electron_form_factor",
    "cell_matrix",
    "reciprocal_basis",
    "cell_parameters",
    "structure_factors",
    "hkl_within",
    "excitation_error",
]

_RESOURCES = Path(__file__).resolve().parents[3] / "resources" / "tomo4d"


@cache
def _peng_table() -> dict:
    with open(_RESOURCES / "peng1996_elastic.json") as fh:
        return json.load(fh)["elements"]


def electron_form_factor(element: str, g: np.ndarray) -> np.ndarray:
    """Elastic electron scattering factor of a neutral atom (Peng et al. 1996).

    Parameters
    ----------
    element : str
        Chemical symbol present in the stored table (C, O, Ti, Br, Cs, Pb).
    g : (...) float array [1/Å]
        Scattering vector length ``1/d`` (``s = g/2``).

    Returns
    -------
    f : (...) float64 [Å]
    """
    table = _peng_table()
    if element not in table:
        raise KeyError(f"no Peng form factor stored for element {element!r}")
    a = np.asarray(table[element]["a"])
    b = np.asarray(table[element]["b"])
    s2 = (np.asarray(g, float) / 2.0) ** 2
    return np.sum(a * np.exp(-b * s2[..., None]), axis=-1)


class Structure(dict):
    """A crystal structure: ``cell`` (a, b, c [Å], alpha, beta, gamma [deg]), ``elements`` (n,),
    ``frac`` (n, 3) fractional coordinates of every atom of the cell, ``name``."""


def _num(text: str) -> float:
    return float(re.sub(r"\(.*\)", "", text))


def _apply_symop(op: str, xyz: np.ndarray) -> np.ndarray:
    out = []
    for expr in op.replace(" ", "").lower().split(","):
        val = 0.0
        for sign, term in re.findall(r"([+-]?)([^+-]+)", expr):
            s = -1.0 if sign == "-" else 1.0
            if term in "xyz":
                val += s * xyz["xyz".index(term)]
            elif "/" in term:
                num, den = term.split("/")
                val += s * float(num) / float(den)
            else:
                val += s * float(term)
        out.append(val)
    return np.mod(np.array(out), 1.0)


def read_cif(path: str | Path) -> Structure:
    """Read cell, symmetry operators and atom sites of a simple CIF and expand the full cell.

    Parameters
    ----------
    path : str or Path
        CIF file with ``_cell_*`` items, a ``_space_group_symop_operation_xyz`` (or
        ``_symmetry_equiv_pos_as_xyz``) loop and an ``_atom_site_`` loop with type symbols and
        fractional coordinates.

    Returns
    -------
    Structure
        Unique atoms of the full cell (positions merged within 1e-3).
    """
    lines = [ln.strip() for ln in Path(path).read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    cell = {}
    for ln in lines:
        for key in ("a", "b", "c", "alpha", "beta", "gamma"):
            tag = f"_cell_{'length' if len(key) == 1 else 'angle'}_{key}"
            if ln.startswith(tag + " "):
                cell[key] = _num(ln.split()[1])
    if len(cell) != 6:
        raise ValueError(f"{path}: incomplete _cell_ items (found {sorted(cell)})")
    symops, sites, i = [], [], 0
    while i < len(lines):
        if lines[i] == "loop_":
            heads, j = [], i + 1
            while j < len(lines) and lines[j].startswith("_"):
                heads.append(lines[j])
                j += 1
            rows = []
            while j < len(lines) and not lines[j].startswith(("_", "loop_", "data_")):
                rows.append(lines[j])
                j += 1
            if any("symop_operation_xyz" in h or "equiv_pos_as_xyz" in h for h in heads):
                symops = [r.split("'")[1] if "'" in r else r.split()[-1] for r in rows]
            elif "_atom_site_fract_x" in heads:
                col = {h: k for k, h in enumerate(heads)}
                key = "_atom_site_type_symbol" if "_atom_site_type_symbol" in col else None
                for r in rows:
                    f = r.split()
                    el = f[col[key]] if key else re.match(r"[A-Za-z]+", f[0]).group(0)
                    xyz = [_num(f[col[f"_atom_site_fract_{c}"]]) for c in "xyz"]
                    sites.append((el, np.array(xyz)))
            i = j
        else:
            i += 1
    if not sites:
        raise ValueError(f"{path}: no _atom_site_ loop with fractional coordinates")
    symops = symops or ["x,y,z"]
    elements, frac = [], []
    for el, xyz in sites:
        for op in symops:
            p = _apply_symop(op, xyz)
            if frac:
                d = np.array(frac) - p
                d -= np.round(d)
                if np.any(np.linalg.norm(d, axis=1) < 1e-3):
                    continue
            elements.append(el)
            frac.append(p)
    cell_t = tuple(cell[k] for k in ("a", "b", "c", "alpha", "beta", "gamma"))
    return Structure(name=Path(path).stem, cell=cell_t, elements=elements, frac=np.array(frac))


def cell_matrix(cell: tuple[float, ...]) -> np.ndarray:
    """Real-space basis (rows a, b, c) [Å] in the standard setting (a along x, b in xy).

    Parameters
    ----------
    cell : (6,) a, b, c [Å], alpha, beta, gamma [deg]
    """
    a, b, c = cell[:3]
    al, be, ga = np.deg2rad(cell[3:])
    cx = np.cos(be)
    cy = (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    cz = np.sqrt(max(1.0 - cx**2 - cy**2, 0.0))
    return np.array(
        [[a, 0.0, 0.0], [b * np.cos(ga), b * np.sin(ga), 0.0], [c * cx, c * cy, c * cz]]
    )


def reciprocal_basis(basis: np.ndarray) -> np.ndarray:
    """Reciprocal basis rows ``a*, b*, c*`` [1/Å] of real basis rows (3, 3) [Å] (no 2 pi)."""
    return np.linalg.inv(np.asarray(basis, float)).T


def cell_parameters(basis: np.ndarray) -> np.ndarray:
    """(6,) a, b, c [Å], alpha, beta, gamma [deg] of a real basis (rows) (3, 3) [Å]."""
    basis = np.asarray(basis, float)
    lengths = np.linalg.norm(basis, axis=1)

    def ang(i, j):
        return np.degrees(np.arccos(basis[i] @ basis[j] / (lengths[i] * lengths[j])))

    return np.array([*lengths, ang(1, 2), ang(0, 2), ang(0, 1)])


def hkl_within(recip: np.ndarray, g_max: float) -> np.ndarray:
    """All Miller indices (n, 3) int except 000 with ``|g| <= g_max`` [1/Å]."""
    lengths = np.linalg.norm(np.linalg.inv(recip), axis=0)  # |a|, |b|, |c| [Å]
    n = [int(np.ceil(g_max * ln)) for ln in lengths]
    rng = [np.arange(-k, k + 1) for k in n]
    hkl = np.stack(np.meshgrid(*rng, indexing="ij"), -1).reshape(-1, 3)
    g = np.linalg.norm(hkl @ recip, axis=1)
    keep = (g <= g_max) & (g > 0)
    return hkl[keep]


def structure_factors(structure: Structure, hkl: np.ndarray) -> np.ndarray:
    """Kinematic electron structure factors.

    Parameters
    ----------
    structure : Structure
    hkl : (n, 3) int

    Returns
    -------
    F : (n,) complex128 [Å]
        ``sum_j f_j(|g|) exp(2 pi i h.x_j)``, no Debye-Waller factor.
    """
    recip = reciprocal_basis(cell_matrix(structure["cell"]))
    g = np.linalg.norm(np.asarray(hkl) @ recip, axis=1)
    phase = np.exp(2j * np.pi * (np.asarray(hkl) @ structure["frac"].T))  # (n, atoms)
    f = np.zeros((len(hkl), len(structure["elements"])))
    for el in set(structure["elements"]):
        cols = [k for k, e in enumerate(structure["elements"]) if e == el]
        f[:, cols] = electron_form_factor(el, g)[:, None]
    return np.sum(f * phase, axis=1)


def excitation_error(g_lab: np.ndarray, wavelength_a: float) -> np.ndarray:
    """Excitation error of reciprocal-lattice points for an incident beam along +z.

    ``s = (K^2 - |k0 + g|^2) / (2K)`` with ``k0 = (0, 0, K)``, ``K = 1/lambda``; ``s > 0`` inside
    the Ewald sphere.

    Parameters
    ----------
    g_lab : (..., 3) float [1/Å]
    wavelength_a : float [Å]

    Returns
    -------
    s : (...) float [1/Å]
    """
    k = 1.0 / wavelength_a
    g = np.asarray(g_lab, float)
    return -(2.0 * k * g[..., 2] + np.sum(g**2, axis=-1)) / (2.0 * k)
