"""Metrics of the tomo4d pipeline (``analyze``): cell and orientation vs the target's truth.

A cell is credited only when it is the target's: after matching the found axes to the true
axes (lengths and directions, any permutation, lines not signs) every length must be within
``length_tol_pct``, every inter-axial angle within ``angle_tol_deg`` and every axis direction
within ``orientation_tol_deg`` of the target particle's axes in the specimen frame, so a
neighbour's identical cell in another orientation is not counted. Masks are scored against the
target's true footprint: purity = |mask & footprint| / |mask|, capture = |mask & footprint| /
|footprint| per tilt. Completeness is the P1 (Friedel-merged) fraction of the lattice points of
the found cell out to the highest indexed resolution that were observed.
"""

from __future__ import annotations

import itertools

import numpy as np
import xarray as xr

from scopeflow.optics.kinematic import cell_matrix, hkl_within, reciprocal_basis
from scopeflow.tomo4d.options import AnalyzeOptions

__all__ = ["analyze", "compare_cell", "mask_scores", "completeness"]


def _line_angle(u: np.ndarray, v: np.ndarray) -> float:
    c = abs(u @ v) / (np.linalg.norm(u) * np.linalg.norm(v))
    return float(np.degrees(np.arccos(np.clip(c, 0.0, 1.0))))


def compare_cell(basis: np.ndarray, true_axes: np.ndarray) -> dict:
    """Errors of a found basis (3, 3) [Å] vs the true axes (3, 3) [Å] (rows, same frame).

    Returns
    -------
    dict with ``length_err_pct`` (3,), ``angle_err_deg`` (3,), ``orientation_err_deg`` (3,).
    """
    best = None
    for perm in itertools.permutations(range(3)):
        t = true_axes[list(perm)]
        lerr = 100 * np.abs(np.linalg.norm(basis, axis=1) / np.linalg.norm(t, axis=1) - 1)
        oerr = np.array([_line_angle(basis[i], t[i]) for i in range(3)])
        aerr = np.array(
            [
                abs(_line_angle(basis[i], basis[j]) - _line_angle(t[i], t[j]))
                for i, j in ((1, 2), (0, 2), (0, 1))
            ]
        )
        key = lerr.sum() + oerr.sum()
        if best is None or key < best[0]:
            best = (key, lerr, aerr, oerr)
    _, lerr, aerr, oerr = best
    return {"length_err_pct": lerr, "angle_err_deg": aerr, "orientation_err_deg": oerr}


def mask_scores(mask: np.ndarray, footprint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-tilt purity and capture (tilt,) of masks (tilt, row, col) vs the footprint."""
    inter = (mask & footprint).sum(axis=(1, 2))
    purity = inter / np.maximum(mask.sum(axis=(1, 2)), 1)
    capture = inter / np.maximum(footprint.sum(axis=(1, 2)), 1)
    return purity, capture


def completeness(hkl: np.ndarray, basis: np.ndarray, g_max: float) -> float:
    """Observed fraction of the Friedel-merged P1 lattice points with ``|g| <= g_max`` [1/Å]."""
    recip = reciprocal_basis(basis)
    expected = hkl_within(recip, g_max)
    n_exp = len(expected) / 2
    obs = np.asarray(hkl)
    obs = obs[np.linalg.norm(obs @ recip, axis=1) <= g_max]
    sign = np.sign(obs[:, 0] * 1e6 + obs[:, 1] * 1e3 + obs[:, 2])[:, None]
    n_obs = len(np.unique(obs * sign, axis=0))
    return float(n_obs / max(n_exp, 1))


def _errors(basis: np.ndarray, truth: dict) -> dict:
    u = np.asarray(truth["orientation"][truth["target"]])
    return compare_cell(basis, cell_matrix(truth["cell"]) @ u.T)


def _correct(err: dict, opts: AnalyzeOptions) -> bool:
    return bool(
        err["length_err_pct"].max() <= opts.length_tol_pct
        and err["angle_err_deg"].max() <= opts.angle_tol_deg
        and err["orientation_err_deg"].max() <= opts.orientation_tol_deg
    )


def analyze(inputs: list, opts: AnalyzeOptions) -> xr.Dataset:
    """Analyze stage: inputs (series, track, index) -> metrics in ``attrs["metrics"]``."""
    series, tracks, idx = inputs
    metrics: dict = {}
    cells = idx.attrs["cells"]
    truth = series.attrs.get("ground_truth")
    for variant, cell in cells.items():
        prefix = "cell" if variant == "tracked" else f"baseline.{variant}"
        metrics[f"{prefix}.n_spots"] = int(cell["n_spots"])
        if "surround_ratio" in cell:
            metrics[f"{prefix}.surround_ratio"] = float(cell["surround_ratio"])
        if "consistent" in cell:
            metrics[f"{prefix}.consistent"] = int(cell["consistent"])
            metrics[f"{prefix}.min_window_fraction"] = float(
                np.nanmin(np.array(cell["window_fraction"], dtype=float))
            )
        if "cell" not in cell:
            if cell.get("error"):
                metrics[f"{prefix}.error"] = str(cell["error"])
            if truth is not None:
                metrics[f"{prefix}.correct_fraction"] = 0.0
                if "rejected_basis" in cell:
                    # was the flagged cell the target's? (a check that flags good cells costs)
                    err = _errors(np.asarray(cell["rejected_basis"]), truth)
                    metrics[f"{prefix}.rejected_was_correct"] = int(_correct(err, opts))
            continue
        basis = np.asarray(cell["basis"])
        for name, val in zip(("a", "b", "c", "alpha", "beta", "gamma"), cell["cell"], strict=True):
            metrics[f"{prefix}.{name}"] = float(val)
        metrics[f"{prefix}.indexed_fraction"] = float(cell["indexed_fraction"])
        metrics[f"{prefix}.tilt_axis_deg"] = float(cell["axis_deg"])
        if truth is None:
            continue
        err = _errors(basis, truth)
        metrics[f"{prefix}.correct_fraction"] = float(_correct(err, opts))
        metrics[f"{prefix}.length_error_max_pct"] = float(err["length_err_pct"].max())
        metrics[f"{prefix}.length_error_median_pct"] = float(np.median(err["length_err_pct"]))
        metrics[f"{prefix}.angle_error_max_deg"] = float(err["angle_err_deg"].max())
        metrics[f"{prefix}.orientation_error_max_deg"] = float(err["orientation_err_deg"].max())
    if "cell" in cells.get(idx.attrs["variant"], {}):
        basis = np.asarray(cells[idx.attrs["variant"]]["basis"])
        g = np.asarray(idx["spot_g"].values)[np.asarray(idx["spot_indexed"].values)]
        if len(g):
            g_max = float(np.linalg.norm(g, axis=1).max())
            metrics["index.completeness_p1"] = completeness(idx["hkl"].values, basis, g_max)
        metrics["index.n_reflections"] = int(idx.sizes.get("reflection", 0))
    purity = capture = None
    if "true_thickness_nm" in series:
        foot = np.asarray(series["true_thickness_nm"][truth["target"]].values) > 0
        for name, var in (("track", "mask"), ("baseline.fixed_box", "mask_fixed_box")):
            purity, capture = mask_scores(np.asarray(tracks[var].values, bool), foot)
            metrics[f"{name}.purity_mean"] = float(purity.mean())
            metrics[f"{name}.purity_min"] = float(purity.min())
            metrics[f"{name}.capture_mean"] = float(capture.mean())
        purity, capture = mask_scores(np.asarray(tracks["mask"].values, bool), foot)
    coords = {"tilt": tracks["tilt"]}
    data = {}
    if purity is not None:
        data["purity"] = (("tilt",), purity, {"units": "1"})
        data["capture"] = (("tilt",), capture, {"units": "1"})
    return xr.Dataset(data, coords=coords, attrs={"metrics": metrics})
