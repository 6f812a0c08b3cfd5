"""Index the summed frames: spots -> reciprocal space -> cell, tilt axis, intensities (``index``).

For each frame set (variant) of the frames store: spot search (:mod:`scopeflow.tomo4d.spots`),
Ewald inversion with the tilt geometry, DPS indexing and least-squares cell refinement
(:mod:`scopeflow.tomo4d.lattice`), then a refinement of the tilt-axis direction (the residual
``|G - H B|`` minimised over the axis angle with the reciprocal basis re-fitted at each angle),
a cell fit on the reflections' rocking-curve centroids, a final fit of the cell and tilt axis
on the detector positions of every spot (:mod:`scopeflow.tomo4d.refine`), and integration:
the intensities of the indexed spots are summed per ``hkl`` over the tilts (Friedel mates kept
apart), with Poisson sigmas. A cell that leaves a tilt window's spots unexplained (the frames
are not one crystal's: the track switched particles) is not reported
(:mod:`scopeflow.tomo4d.consistency`): ``consistent = 0``, the reason in ``error``, a warning in
the log, no indexed spots and no reflections. A tracked lattice that diffracts in the band
around the tracked box (``frames_surround``) with more than ``max_surround_ratio`` of its
intensity inside the mask is a neighbour lying over or under the target: the lattice is searched
again in the spots it leaves and reported only when it passes both checks, else no cell is
reported.

Store (kind ``tomo4d.index``): for the tracked variant a spot table along ``spot`` (``spot_frame``,
``spot_row``/``spot_col`` [px], ``spot_intensity`` [counts], ``spot_g`` (spot, xyz) [1/Å],
``spot_hkl`` (spot, hkl), ``spot_indexed``) and the merged reflections along ``reflection``
(``hkl``, ``intensity``, ``sigma``, ``n_obs``); ``attrs["cells"][variant]`` holds cell parameters,
the real basis in the specimen frame [Å], the refined tilt axis, indexing statistics,
``consistent`` and ``window_fraction`` (indexed intensity share per tilt window); a flagged
variant has ``rejected_basis`` (for diagnosis) instead of ``cell``/``basis``.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr
from scipy.optimize import minimize_scalar

from scopeflow.optics.kinematic import cell_parameters
from scopeflow.optics.wavelength import electron_wavelength
from scopeflow.tomo4d.consistency import check_consistency, surround_ratio
from scopeflow.tomo4d.lattice import index_spots, refine_basis, refine_merged
from scopeflow.tomo4d.options import IndexOptions
from scopeflow.tomo4d.refine import refine_detector
from scopeflow.tomo4d.spots import specimen_vectors, spot_table

__all__ = ["index", "index_variant", "merge_reflections"]

log = logging.getLogger(__name__)


def _axis_residual(phi, spots, centres, tilt, dk, lam, hkl, inl):
    g = specimen_vectors(spots, centres, tilt, phi, dk, lam)
    recip = np.linalg.lstsq(hkl[inl], g[inl], rcond=None)[0]
    return float(np.mean(np.sum((g[inl] - hkl[inl] @ recip) ** 2, axis=1)))


def _spot_radius(attrs: dict, opts: IndexOptions) -> float:
    """Spot disk radius [px]: the option, else the convergence disk on the detector."""
    lam = electron_wavelength(attrs["beam_energy_eV"]) * 10.0
    dk = float(attrs["k_pixel_inv_A"])
    return opts.spot_radius_px or attrs.get("convergence_mrad", 1.0) * 1e-3 / lam / dk


def merge_reflections(hkl: np.ndarray, intensity: np.ndarray, sigma: np.ndarray):
    """Sum partial intensities per hkl.

    Returns
    -------
    hkl : (m, 3) int, intensity : (m,) [counts], sigma : (m,) [counts], n_obs : (m,) int
    """
    uniq, inv = np.unique(hkl, axis=0, return_inverse=True)
    inv = inv.ravel()
    inten = np.bincount(inv, weights=intensity, minlength=len(uniq))
    sig = np.sqrt(np.bincount(inv, weights=sigma**2, minlength=len(uniq)))
    n_obs = np.bincount(inv, minlength=len(uniq))
    return uniq, inten, sig, n_obs


def index_variant(
    frames: np.ndarray,
    centres: np.ndarray,
    tilt: np.ndarray,
    attrs: dict,
    opts,
    spots: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
):
    """Index one frame set.

    Parameters
    ----------
    frames : (frame, k_row, k_col) float [counts]
    centres : (frame, 2) float [px] direct beam
    tilt : (frame,) float [deg]
    attrs : dict with beam_energy_eV, k_pixel_inv_A, tilt_axis_deg, convergence_mrad
    opts : IndexOptions
    spots : (n, 5) float, optional
        Spot table of these frames (found again when not given).
    exclude : (n,) bool, optional
        Spots left out of the lattice search (those of a lattice already found); every spot is
        indexed with the lattice found in the others.

    Returns
    -------
    result : dict
        ``spots`` (n, 5), ``g`` (n, 3), ``hkl`` (n, 3), ``inlier`` (n,), ``basis`` (3, 3) or
        None when indexing failed, ``axis_deg``, ``error`` (str, '' on success).
    """
    lam = electron_wavelength(attrs["beam_energy_eV"]) * 10.0
    dk = float(attrs["k_pixel_inv_A"])
    radius = _spot_radius(attrs, opts)
    if spots is None:
        spots = spot_table(frames, centres, radius, opts.threshold_sigma, opts.min_g_inv_a / dk)
    use = np.ones(len(spots), bool) if exclude is None else ~np.asarray(exclude, bool)
    phi = float(attrs["tilt_axis_deg"])
    out = {"spots": spots, "axis_deg": phi, "basis": None, "error": ""}
    g = specimen_vectors(spots, centres, tilt, phi, dk, lam)
    n = len(spots)
    out.update(g=g, hkl=np.zeros((n, 3), int), inlier=np.zeros(n, bool))
    if use.sum() < 12:
        out["error"] = f"only {int(use.sum())} spots"
        return out
    try:
        basis, hkl, inl = index_spots(
            g[use], spots[use, 3], opts.d_range_a[:2], opts.direction_step_deg, opts.tolerance
        )
        if not use.all():
            basis, hkl, inl = refine_basis(g, basis, opts.tolerance)
        if opts.refine_axis:
            res = minimize_scalar(
                _axis_residual,
                bounds=(phi - 5.0, phi + 5.0),
                method="bounded",
                args=(spots, centres, tilt, dk, lam, hkl, inl),
                options={"xatol": 0.01},
            )
            phi = float(res.x)
            g = specimen_vectors(spots, centres, tilt, phi, dk, lam)
            basis, hkl, inl = refine_basis(g, basis, opts.tolerance)
        basis = refine_merged(g, spots[:, 3], basis, hkl, inl)
        basis, hkl, inl = refine_basis(g, basis, opts.tolerance, n_iter=0)
        basis, phi, _ = refine_detector(
            spots, centres, tilt, hkl, inl, basis, phi, dk, lam, radius, fit_axis=opts.refine_axis
        )
        g = specimen_vectors(spots, centres, tilt, phi, dk, lam)
        basis, hkl, inl = refine_basis(g, basis, opts.tolerance, n_iter=0)
    except (ValueError, np.linalg.LinAlgError) as err:
        out["error"] = str(err)
        return out
    out.update(g=g, hkl=hkl, inlier=inl, basis=basis, axis_deg=phi)
    return out


def _owned_lattice(frames, centres, tilt, frames_ds, opts, r: dict, chk: dict, cell: dict):
    """Real-space check of the tracked lattice; a neighbour's is replaced by the next lattice.

    The lattice found first is the one that dominates the summed frames. When it diffracts in
    the band around the tracked box (``surround_ratio > max_surround_ratio``) it is a neighbour
    lying over or under the target; the target's lattice is then searched in the spots the
    neighbour's leaves, and reported only if it passes the tilt-window check and its own
    surround check. Otherwise no cell is reported. Updates ``cell`` (``surround_ratio``,
    ``consistent``, ``window_fraction``, ``indexed_fraction``, ``lattice``: 1 or 2) in place.

    Returns
    -------
    r, chk : the indexing result and consistency check of the lattice kept
    """
    around = np.asarray(frames_ds["frames_surround"].values, float)
    radius = _spot_radius(frames_ds.attrs, opts)
    ratio = surround_ratio(frames, around, r["spots"], r["inlier"], radius)
    cell.update(surround_ratio=ratio, lattice=1)
    if not chk["consistent"] or not ratio > opts.max_surround_ratio:
        return r, chk
    reason = (
        f"the crystal found first diffracts around the tracked box with {ratio:.2f} of its "
        f"intensity inside the mask (> {opts.max_surround_ratio:.2f}): a neighbour over or "
        "under the target"
    )
    r2 = index_variant(
        frames, centres, tilt, frames_ds.attrs, opts, spots=r["spots"], exclude=r["inlier"]
    )
    if r2["basis"] is not None:
        chk2 = check_consistency(
            r2["spots"][:, 0],
            r2["spots"][:, 3],
            r2["inlier"],
            len(tilt),
            opts.check_windows,
            opts.min_window_fraction,
        )
        ratio2 = surround_ratio(frames, around, r2["spots"], r2["inlier"], radius)
        if chk2["consistent"] and ratio2 <= opts.max_surround_ratio:
            log.info("index tracked: %s; the second crystal (%.2f) is reported", reason, ratio2)
            cell.update(
                consistent=1,
                window_fraction=chk2["window_fraction"],
                indexed_fraction=float(r2["inlier"].mean()),
                axis_deg=r2["axis_deg"],
                surround_ratio=ratio2,
                first_surround_ratio=ratio,
                lattice=2,
            )
            return r2, chk2
        reason += (
            f"; the next crystal in its frames is not the target's either (surround "
            f"{ratio2:.2f}, tilt-window check {'passed' if chk2['consistent'] else 'failed'})"
        )
    else:
        reason += f"; no second crystal indexed ({r2['error']})"
    cell["consistent"] = 0
    return r, {**chk, "consistent": False, "reason": reason}


def index(inputs: list, opts: IndexOptions) -> xr.Dataset:
    """Index stage (see module docstring)."""
    (frames_ds,) = inputs
    variants = [v for v in opts.variants if f"frames_{v}" in frames_ds]
    if not variants:
        raise ValueError(f"index: none of the variants {opts.variants} in the frames store")
    tilt = np.asarray(frames_ds["tilt"].values)
    centre = np.asarray(frames_ds.attrs["beam_centre_px"], float)
    cells, main = {}, None
    for v in variants:
        frames = np.asarray(frames_ds[f"frames_{v}"].values, float)
        centres = centre + np.asarray(frames_ds[f"beam_offset_{v}"].values)
        r = index_variant(frames, centres, tilt, frames_ds.attrs, opts)
        cell = {"n_spots": len(r["spots"]), "axis_deg": r["axis_deg"], "error": r["error"]}
        if r["basis"] is not None:
            chk = check_consistency(
                r["spots"][:, 0],
                r["spots"][:, 3],
                r["inlier"],
                len(tilt),
                opts.check_windows,
                opts.min_window_fraction,
            )
            cell.update(
                consistent=int(chk["consistent"]),
                window_fraction=chk["window_fraction"],
                indexed_fraction=float(r["inlier"].mean()),
            )
            if v == "tracked" and "frames_surround" in frames_ds and opts.max_surround_ratio > 0:
                r, chk = _owned_lattice(frames, centres, tilt, frames_ds, opts, r, chk, cell)
            if chk["consistent"]:
                cell.update(cell=cell_parameters(r["basis"]).tolist(), basis=r["basis"].tolist())
            else:
                # kept for diagnosis only: analyze and export treat the variant as unindexed
                cell.update(rejected_basis=r["basis"].tolist(), error=chk["reason"])
                r["inlier"] = np.zeros_like(r["inlier"])
                log.warning("index %s: no cell reported: %s", v, chk["reason"])
        cells[v] = cell
        if main is None:
            main = (v, r)
    name, r = main
    sp = r["spots"]
    inl = r["inlier"]
    hkl_m, inten, sig, n_obs = merge_reflections(r["hkl"][inl], sp[inl, 3], sp[inl, 4])
    ds = xr.Dataset(
        {
            "spot_frame": (("spot",), sp[:, 0].astype(np.int32), {"units": "1"}),
            "spot_row": (("spot",), sp[:, 1], {"units": "px"}),
            "spot_col": (("spot",), sp[:, 2], {"units": "px"}),
            "spot_intensity": (("spot",), sp[:, 3], {"units": "counts"}),
            "spot_g": (("spot", "xyz"), r["g"], {"units": "1/A"}),
            "spot_hkl": (("spot", "hkl_index"), r["hkl"].astype(np.int32)),
            "spot_indexed": (("spot",), inl),
            "hkl": (("reflection", "hkl_index"), hkl_m.astype(np.int32)),
            "intensity": (("reflection",), inten, {"units": "counts"}),
            "sigma": (("reflection",), sig, {"units": "counts"}),
            "n_obs": (("reflection",), n_obs.astype(np.int32)),
        },
        coords={
            "xyz": ("xyz", np.arange(3), {"units": "1"}),
            "hkl_index": ("hkl_index", np.arange(3), {"units": "1"}),
        },
        attrs={"variant": name, "cells": cells, "tilt_deg": tilt.tolist()},
    )
    for key in ("beam_energy_eV", "k_pixel_inv_A", "convergence_mrad", "ground_truth"):
        if key in frames_ds.attrs:
            ds.attrs[key] = frames_ds.attrs[key]
    return ds
