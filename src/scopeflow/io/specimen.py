"""Shared ferroelectric specimen definitions (``resources/specimens/<name>.yaml``).

One specimen file is read and rasterised here so that every technique that simulates it (polar4d,
fpxm) builds the same polarization field; the correlative comparison reads its thicknesses.

Geometry (the convention of both simulators): the image plane is the crystal (x, z) plane of a
film cross-section, rows along z = [001] (film normal), columns along x = [100]; the beam (or the
projection direction) is along y. Coordinates are in nm, centred on the field of view:
``(i - n / 2) * pixel`` (fpxm's object grid) or any other points inside it. Polarization is
stored as crystal (x, y, z) components.

A 4D-STEM network reports ``(dx, dy, dz)`` with dx along scan rows, dy along scan columns and dz
along the beam; in this geometry that is ``(P_z, P_x, P_y)`` (rows, cols, beam is right-handed:
z × x = y), see :func:`beam_frame`.

File format (every physical quantity as ``{value: ..., units: ...}``)::

    name: stripe_domains
    material: BaTiO3
    geometry: stripes               # only stripes for now
    wall_normal: col                # stripes alternate along columns (or "row")
    field_of_view: {value: [960, 960], units: nm}        # (rows, cols)
    period: {value: 480, units: nm}                     # one period holds every domain once
    polarization: {value: [[0, 0, 26], [0, 0, -26]], units: uC/cm2}   # (x, y, z) per domain
    wall_width: {value: 5, units: nm}                   # tanh half-width
    film_thickness: {value: 960, units: nm}
    lamella_thickness: {value: 16, units: nm}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

__all__ = [
    "SPECIMEN_DIR",
    "load_specimen",
    "polarization_map",
    "domain_walls",
    "beam_frame",
    "crystal_frame",
]

#: Folder of the shared specimen files.
SPECIMEN_DIR = Path(__file__).resolve().parents[3] / "resources" / "specimens"

_LENGTH = {"nm": 1.0, "um": 1e3, "µm": 1e3, "Å": 0.1, "A": 0.1}
_POLARIZATION = {"uC/cm2": 1.0, "µC/cm²": 1.0, "µC/cm2": 1.0, "C/m2": 100.0, "C/m^2": 100.0}
_LENGTH_KEYS = ("field_of_view", "period", "wall_width", "film_thickness", "lamella_thickness")


def _quantity(raw: dict, key: str, table: dict, where: str) -> np.ndarray:
    """``raw[key]`` as ``{value, units}`` converted with ``table`` (a clear error otherwise)."""
    if key not in raw:
        raise ValueError(f"specimen {where}: missing {key!r}")
    q = raw[key]
    if not isinstance(q, dict) or "value" not in q or "units" not in q:
        raise ValueError(
            f"specimen {where}: {key!r} must be {{value: ..., units: ...}} (units are "
            f"mandatory; one of {sorted(table)}), got {q!r}"
        )
    if q["units"] not in table:
        raise ValueError(
            f"specimen {where}: {key!r} has units {q['units']!r}; expected one of {sorted(table)}"
        )
    return np.asarray(q["value"], float) * table[q["units"]]


def load_specimen(name: str) -> dict:
    """Read and validate a specimen file.

    Parameters
    ----------
    name : str
        A path to a YAML file, or the stem of a file in ``resources/specimens/``.

    Returns
    -------
    dict
        ``name``, ``material``, ``geometry``, ``wall_normal``, lengths in nm
        (``field_of_view_nm`` (2,), ``period_nm``, ``wall_width_nm``, ``film_thickness_nm``,
        ``lamella_thickness_nm``), ``polarization_uC_cm2`` (n_domains, 3) (x, y, z) and
        ``path``.

    Raises
    ------
    ValueError
        Unknown specimen, a missing key or unit, or an inconsistent geometry.
    """
    path = Path(name)
    if not path.is_file():
        path = SPECIMEN_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in SPECIMEN_DIR.glob("*.yaml"))
        raise ValueError(f"specimen {name!r}: no such file, nor in {SPECIMEN_DIR} ({known})")
    raw = yaml.safe_load(path.read_text())
    where = str(path)
    if not isinstance(raw, dict):
        raise ValueError(f"specimen {where}: not a mapping")
    if raw.get("geometry") != "stripes":
        raise ValueError(f"specimen {where}: geometry {raw.get('geometry')!r}; only 'stripes'")
    if raw.get("wall_normal") not in ("row", "col"):
        raise ValueError(f"specimen {where}: wall_normal must be 'row' or 'col'")
    spec = {
        "name": str(raw.get("name", path.stem)),
        "material": str(raw.get("material", "BaTiO3")),
        "geometry": "stripes",
        "wall_normal": raw["wall_normal"],
        "path": str(path),
    }
    for key in _LENGTH_KEYS:
        spec[f"{key}_nm"] = _quantity(raw, key, _LENGTH, where)
    spec["period_nm"] = float(spec["period_nm"])
    for key in ("wall_width_nm", "film_thickness_nm", "lamella_thickness_nm"):
        spec[key] = float(spec[key])
    pol = _quantity(raw, "polarization", _POLARIZATION, where)
    if pol.ndim != 2 or pol.shape[1] != 3 or len(pol) < 1:
        raise ValueError(f"specimen {where}: polarization must be a list of (x, y, z) vectors")
    spec["polarization_uC_cm2"] = pol
    fov = spec["field_of_view_nm"]
    if fov.shape != (2,) or np.any(fov <= 0) or spec["period_nm"] <= 0:
        raise ValueError(f"specimen {where}: field_of_view (rows, cols) and period must be > 0")
    along = fov[0] if spec["wall_normal"] == "row" else fov[1]
    if abs(along / spec["period_nm"] - round(along / spec["period_nm"])) > 1e-6:
        raise ValueError(
            f"specimen {where}: the field of view along the wall normal ({along} nm) must hold "
            f"a whole number of periods ({spec['period_nm']} nm) so the cell is periodic"
        )
    if spec["lamella_thickness_nm"] > spec["film_thickness_nm"]:
        raise ValueError(f"specimen {where}: lamella thicker than the film")
    return spec


def _domain_weights(spec: dict, row_nm: np.ndarray, col_nm: np.ndarray) -> np.ndarray:
    """Smooth indicators (n_domains, rows, cols) in [0, 1] of each domain (tanh walls)."""
    r, c = np.meshgrid(np.asarray(row_nm, float), np.asarray(col_nm, float), indexing="ij")
    x = r if spec["wall_normal"] == "row" else c
    n_dom = len(spec["polarization_uC_cm2"])
    period = spec["period_nm"]
    width = spec["wall_width_nm"] / period
    # stripe phase in periods; domain k fills [k/n, (k+1)/n), the first wall at -period/2
    t = np.mod(x / period + 0.5, 1.0)
    out = []
    for k in range(n_dom):
        lo, hi = k / n_dom, (k + 1) / n_dom
        band = sum(
            0.5 * (np.tanh((t - lo + s) / width) - np.tanh((t - hi + s) / width))
            for s in (-1.0, 0.0, 1.0)
        )
        out.append(np.clip(band, 0.0, 1.0))
    return np.stack(out)


def polarization_map(spec: dict, row_nm: np.ndarray, col_nm: np.ndarray) -> np.ndarray:
    """Polarization of the specimen sampled at grid points.

    Parameters
    ----------
    spec : dict
        From :func:`load_specimen`.
    row_nm, col_nm : (rows,), (cols,) float [nm]
        Point coordinates (centred on the field of view; the stripes are periodic).

    Returns
    -------
    (3, rows, cols) float64 [µC/cm²]
        Crystal (x, y, z) components; across a wall P passes linearly between the domains'
        vectors (through zero at a 180° wall, the Ising wall).
    """
    w = _domain_weights(spec, row_nm, col_nm)
    return np.einsum("krc,ki->irc", w, spec["polarization_uC_cm2"])


def domain_walls(spec: dict, row_nm: np.ndarray, col_nm: np.ndarray) -> np.ndarray:
    """(rows, cols) bool: points not inside a uniform domain (within ~4 wall widths of a wall)."""
    return _domain_weights(spec, row_nm, col_nm).max(axis=0) < 1.0 - 1e-3


def beam_frame(p_xyz: np.ndarray, axis: int = 0) -> np.ndarray:
    """Crystal (x, y, z) -> 4D-STEM (dx along rows, dy along cols, dz along beam) = (z, x, y)."""
    return np.take(p_xyz, [2, 0, 1], axis=axis)


def crystal_frame(p_beam: np.ndarray, axis: int = 0) -> np.ndarray:
    """4D-STEM (dx, dy, dz) -> crystal (x, y, z); the inverse of :func:`beam_frame`."""
    return np.take(p_beam, [1, 2, 0], axis=axis)
