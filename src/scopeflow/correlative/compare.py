"""Stage ``compare``: polar4d and fpxm polarization maps on one grid, and their agreement.

Both maps are brought to the crystal (x, y, z) frame of the shared specimen geometry
(:mod:`scopeflow.io.specimen`: rows along z, columns along x, beam along y) in µC/cm², on the
physical coordinates of their stores (nm). The common grid is, by default, the coarser
technique's own sampling points inside the overlap of the two fields (so that map is not
interpolated); the other map is linearly interpolated there (NaN where a neighbour is NaN,
e.g. fpxm's dark, out-of-Bragg regions). Both techniques see the cross-section plane (x, z);
agreement is scored there:

- ``magnitude.*``: |P| (x, z) RMSE, bias (fpxm - polar4d) and Pearson correlation;
- ``vector.rmse_uC_cm2``: signed P (x, z) RMSE;
- ``direction.agreement``: fraction of points (both |P| >= ``min_magnitude``) whose vectors
  are within ``direction_tolerance_deg``; ``axis.agreement``: the same up to a sign, what
  strain alone can tell (strain is even in P).

Where each technique is blind is stated in the metrics (``blind.*``): fpxm's P comes from strain,
even in P, so its sign exists only where a ±E pair gave it (``fpxm.sign_known_fraction``) and
it cannot see P_y (along its projection); 4D-STEM averages P through a thin lamella
(``polar4d.lamella_fraction`` of the film) with relaxed surfaces, and measures P_y along the beam
(``polar4d.along_beam_rms_uC_cm2``) that fpxm cannot check.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.interpolate import RegularGridInterpolator

from scopeflow.correlative.options import CompareOptions
from scopeflow.io import specimen as shared

__all__ = ["compare", "polar4d_map", "fpxm_map", "agreement"]

_UC_CM2 = {"µC/cm²": 1.0, "uC/cm2": 1.0, "µC/cm2": 1.0, "C/m^2": 100.0, "C/m2": 100.0}
_NM = {"nm": 1.0, "µm": 1e3, "um": 1e3, "Å": 0.1}


def _scale(var: xr.DataArray, table: dict, where: str) -> float:
    """Factor turning ``var`` into the table's unit; a clear error when units are missing."""
    units = var.attrs.get("units")
    if units is None:
        raise ValueError(f"correlative compare: {where} has no 'units' attribute")
    if units not in table:
        raise ValueError(
            f"correlative compare: {where} has units {units!r}, not one of {list(table)}"
        )
    return table[units]


def _axis(ds: xr.Dataset, name: str, where: str) -> np.ndarray:
    coord = ds[name]
    values = np.asarray(coord.values, float) * _scale(coord, _NM, f"{where} coordinate {name!r}")
    if values.size < 2 or np.any(np.diff(values) <= 0):
        raise ValueError(f"correlative compare: {where} {name!r} needs >= 2 increasing positions")
    return values


def polar4d_map(pmap: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``polar4d.pmap`` in the crystal frame.

    Returns
    -------
    rows, cols : (r,), (c,) float [nm]
    p : (3, r, c) float64 [µC/cm²]
        Crystal (x, y, z): ``dx`` (along rows) = P_z, ``dy`` (along cols) = P_x, ``dz`` = P_y.
    """
    where = "polar4d.pmap"
    if "polarization" not in pmap:
        raise ValueError(f"correlative compare: {where} has no 'polarization' variable")
    pol = pmap["polarization"]
    if pol.dims != ("scan_row", "scan_col", "component"):
        raise ValueError(f"correlative compare: {where} polarization dims {pol.dims}")
    if list(pmap["component"].values) != ["dx", "dy", "dz"]:
        raise ValueError(f"correlative compare: {where} components must be dx, dy, dz")
    p = np.asarray(pol.values, float) * _scale(pol, _UC_CM2, f"{where} polarization")
    rows, cols = _axis(pmap, "scan_row", where), _axis(pmap, "scan_col", where)
    return rows, cols, shared.crystal_frame(np.moveaxis(p, -1, 0))


def fpxm_map(analysis: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An ``fpxm.analysis`` in the crystal frame (mean over the applied-field states).

    The mean of a ±E pair is the zero-field P to first order in E.

    Returns
    -------
    rows, cols : (r,), (c,) float [nm]
    p : (3, r, c) float64 [µC/cm²]
        Crystal (x, y, z); NaN where the variant is dark.
    sign : (r, c) float
        Sign of P·G from the ±E pair: +1/-1, 0 = unknown (strain is even in P).
    """
    where = "fpxm.analysis"
    for name in ("polarization", "polarization_sign"):
        if name not in analysis:
            raise ValueError(f"correlative compare: {where} has no {name!r} variable")
    pol = analysis["polarization"]
    if pol.dims != ("efield", "component", "obj_row", "obj_col"):
        raise ValueError(f"correlative compare: {where} polarization dims {pol.dims}")
    if list(analysis["component"].values) != ["x", "y", "z"]:
        raise ValueError(f"correlative compare: {where} components must be x, y, z")
    p = np.asarray(pol.values, float).mean(axis=0) * _scale(pol, _UC_CM2, f"{where} polarization")
    rows, cols = _axis(analysis, "obj_row", where), _axis(analysis, "obj_col", where)
    return rows, cols, p, np.asarray(analysis["polarization_sign"].values, float)


def _common_axis(a: np.ndarray, b: np.ndarray, step: float | None, name: str) -> np.ndarray:
    lo, hi = max(a[0], b[0]), min(a[-1], b[-1])
    if hi < lo:
        raise ValueError(
            f"correlative compare: the fields do not overlap along {name}: polar4d "
            f"[{a[0]:g}, {a[-1]:g}] nm, fpxm [{b[0]:g}, {b[-1]:g}] nm"
        )
    tol = 1e-6 * max(abs(lo), abs(hi), 1.0)
    if step is None:
        coarse = a if np.median(np.diff(a)) >= np.median(np.diff(b)) else b
        return coarse[(coarse >= lo - tol) & (coarse <= hi + tol)]
    return lo + step * np.arange(int(np.floor((hi - lo) / step + 1e-9)) + 1)


def _resample(rows, cols, values, new_rows, new_cols, method="linear") -> np.ndarray:
    """``values (..., r, c)`` at the grid (new_rows, new_cols); exact on its own nodes."""
    ir, ic = np.searchsorted(rows, new_rows), np.searchsorted(cols, new_cols)
    own = (
        np.all(ir < rows.size)
        and np.all(ic < cols.size)
        and np.allclose(rows[np.minimum(ir, rows.size - 1)], new_rows, rtol=0, atol=1e-6)
        and np.allclose(cols[np.minimum(ic, cols.size - 1)], new_cols, rtol=0, atol=1e-6)
    )
    if own:
        return values[..., ir[:, None], ic[None, :]]
    grid = np.meshgrid(
        np.clip(new_rows, rows[0], rows[-1]), np.clip(new_cols, cols[0], cols[-1]), indexing="ij"
    )
    pts = np.stack(grid, -1)
    flat = values.reshape(-1, rows.size, cols.size)
    out = [RegularGridInterpolator((rows, cols), v, method=method)(pts) for v in flat]
    return np.stack(out).reshape(*values.shape[:-2], new_rows.size, new_cols.size)


def agreement(pa: np.ndarray, pb: np.ndarray, sign_b: np.ndarray, opts: CompareOptions) -> dict:
    """Agreement of two crystal-frame maps in the (x, z) plane.

    Parameters
    ----------
    pa, pb : (3, r, c) float [µC/cm²]
        polar4d and fpxm P (x, y, z); NaN = no value.
    sign_b : (r, c) float
        fpxm sign knowledge (+1/-1 known, 0 unknown).
    opts : CompareOptions

    Returns
    -------
    dict
        Flat metrics (see the module docstring) and ``compared`` (r, c) bool, ``angle_deg``
        (r, c) [deg] (NaN where not compared).
    """
    a, b = pa[[0, 2]], pb[[0, 2]]
    ok = np.all(np.isfinite(a), 0) & np.all(np.isfinite(b), 0)
    n = int(ok.sum())
    if n == 0:
        raise ValueError("correlative compare: no point has a finite P in both maps")
    ma, mb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    cos = np.sum(a * b, 0) / np.maximum(ma * mb, 1e-12)
    angle = np.where(ok, np.degrees(np.arccos(np.clip(cos, -1, 1))), np.nan)
    out = {
        "n_points": n,
        "magnitude.rmse_uC_cm2": float(np.sqrt(np.mean((mb[ok] - ma[ok]) ** 2))),
        "magnitude.bias_uC_cm2": float(np.mean(mb[ok] - ma[ok])),
        "magnitude.polar4d_mean_uC_cm2": float(ma[ok].mean()),
        "magnitude.fpxm_mean_uC_cm2": float(mb[ok].mean()),
        "vector.rmse_uC_cm2": float(np.sqrt(np.mean(np.sum((b - a)[:, ok] ** 2, 0)))),
        "fpxm.sign_known_fraction": float(np.mean(sign_b[ok] != 0)),
        "polar4d.along_beam_rms_uC_cm2": float(np.sqrt(np.nanmean(pa[1][ok] ** 2))),
    }
    # Pearson r is undefined for a uniform map (e.g. |P| inside 180° domains only)
    if n > 2 and ma[ok].std() > 1e-9 and mb[ok].std() > 1e-9:
        out["magnitude.corr"] = float(np.corrcoef(ma[ok], mb[ok])[0, 1])
    scored = ok & (ma >= opts.min_magnitude) & (mb >= opts.min_magnitude)
    out["direction.n_scored"] = int(scored.sum())
    if scored.any():
        tol = opts.direction_tolerance_deg
        out["direction.agreement"] = float(np.mean(angle[scored] <= tol))
        out["axis.agreement"] = float(np.mean(np.minimum(angle, 180 - angle)[scored] <= tol))
        known = scored & (sign_b != 0)
        if known.any():
            out["direction.agreement_sign_known"] = float(np.mean(angle[known] <= tol))
    return {"metrics": out, "compared": ok, "angle_deg": angle}


def _blind_notes(spec: dict | None, sign_known: float) -> dict:
    notes = {
        "blind.fpxm": (
            "P from strain, which is even in P: the sign is known only from a +-E pair "
            f"({100 * sign_known:.0f} % of the compared points; elsewhere P is drawn along +G); "
            "P_y (along the projection) is not measured"
        ),
        "blind.polar4d": (
            "P averaged through the lamella thickness along the beam (surface layers relaxed "
            "by thinning count fully); the along-beam P_y has no fpxm counterpart"
        ),
    }
    if spec is not None:
        frac = spec["lamella_thickness_nm"] / spec["film_thickness_nm"]
        notes["specimen"] = spec["name"]
        notes["polar4d.lamella_fraction"] = float(frac)
        notes["blind.polar4d"] = (
            f"a {spec['lamella_thickness_nm']:g} nm lamella ({100 * frac:.1f} % of the "
            f"{spec['film_thickness_nm']:g} nm film fpxm projects through): "
            + notes["blind.polar4d"]
        )
    return notes


def compare(inputs: list[xr.Dataset], opts: CompareOptions) -> xr.Dataset:
    """Stage ``compare``: (``polar4d.pmap``, ``fpxm.analysis``) -> ``correlative.comparison``.

    Returns
    -------
    xarray.Dataset
        ``p_polar4d``, ``p_fpxm (component, row, col)`` [µC/cm²] (crystal x, y, z),
        ``magnitude_polar4d``, ``magnitude_fpxm (row, col)`` [µC/cm²] (in the (x, z) plane),
        ``angle_deg (row, col)`` [deg], ``fpxm_sign (row, col)``, ``compared (row, col)``;
        ``attrs["metrics"]`` (flat, see the module docstring).
    """
    pmap, analysis = inputs
    ra, ca, pa = polar4d_map(pmap)
    rb, cb, pb, sign = fpxm_map(analysis)
    rows = _common_axis(ra, rb, opts.grid_step_nm, "rows")
    cols = _common_axis(ca, cb, opts.grid_step_nm, "cols")
    pa = _resample(ra, ca, pa, rows, cols)
    pb = _resample(rb, cb, pb, rows, cols)
    sign = _resample(rb, cb, sign, rows, cols, method="nearest")
    res = agreement(pa, pb, sign, opts)
    spec = shared.load_specimen(opts.specimen) if opts.specimen else None
    metrics = {**res["metrics"], **_blind_notes(spec, res["metrics"]["fpxm.sign_known_fraction"])}
    metrics["grid.step_rows_nm"] = float(np.diff(rows).mean()) if rows.size > 1 else 0.0
    metrics["grid.step_cols_nm"] = float(np.diff(cols).mean()) if cols.size > 1 else 0.0
    uc = {"units": "µC/cm²"}
    dims = ("component", "row", "col")
    ds = xr.Dataset(
        {
            "p_polar4d": (dims, pa.astype(np.float32), uc),
            "p_fpxm": (dims, pb.astype(np.float32), uc),
            "magnitude_polar4d": (("row", "col"), np.hypot(pa[0], pa[2]).astype(np.float32), uc),
            "magnitude_fpxm": (("row", "col"), np.hypot(pb[0], pb[2]).astype(np.float32), uc),
            "angle_deg": (("row", "col"), res["angle_deg"].astype(np.float32), {"units": "deg"}),
            "fpxm_sign": (("row", "col"), sign.astype(np.int8), {"units": "1"}),
            "compared": (("row", "col"), res["compared"], {"units": "1"}),
        },
        coords={
            "component": ("component", ["x", "y", "z"], {"units": "1"}),
            "row": ("row", rows, {"units": "nm", "long_name": "crystal z"}),
            "col": ("col", cols, {"units": "nm", "long_name": "crystal x"}),
        },
        attrs={"frame": "crystal (x, y, z); rows along z, cols along x, beam along y"},
    )
    ds.attrs["metrics"] = metrics
    return ds
