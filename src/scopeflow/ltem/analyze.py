"""The ``analyze`` stage: induction maps and metrics against ground truth.

Induction from the magnetic phase (Aharonov-Bohm; central differences):

    B_x t = (hbar / e) d phi / dy,   B_y t = -(hbar / e) d phi / dx,   hbar / e = 658.2 T nm^2,

with x along columns and y along rows; B in T is ``B t`` divided by the film thickness. The
magnetic phase is ``phase_*_m`` when a flipped series separated it, else the total phase (which
equals the magnetic phase up to the electrostatic part; exact for a uniform film).

Metrics (``attrs["metrics"]``, flat dotted keys), when the store carries ``true_*`` variables:
relative L2 error of the mean-free phase, phase scale (least-squares slope of recovered on
true), NCC, FRC resolution against the truth, B errors, recovered-vs-true microscope
parameters (defocus, shifts, rotations, magnifications) for AD, and the same phase metrics for
TIE; plus timings, convergence and fit statistics. Without ground truth only the latter and
physical summaries (max |B|, phase range) are reported.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from scopeflow.ltem.options import AnalyzeOptions
from scopeflow.optics.metrics import frc, frc_resolution, ncc, rel_l2_meanfree, scale_factor
from scopeflow.optics.wavelength import HBAR_OVER_E_T_NM2

__all__ = ["induction_from_phase", "analyze"]


def induction_from_phase(phase, pixel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Projected in-plane induction from a magnetic phase map.

    Parameters
    ----------
    phase : (rows, cols) array_like [rad]
    pixel_size : float [nm]

    Returns
    -------
    bx_t, by_t : (rows, cols) ndarray [T nm]
    """
    dphi_dy, dphi_dx = np.gradient(np.asarray(phase, dtype=np.float64), pixel_size)
    return HBAR_OVER_E_T_NM2 * dphi_dy, -HBAR_OVER_E_T_NM2 * dphi_dx


def _phase_metrics(prefix: str, rec, truth, pixel: float, threshold: float) -> dict:
    q, curve = frc(rec, truth, pixel)
    return {
        f"{prefix}.phase_rel_l2": rel_l2_meanfree(rec, truth),
        f"{prefix}.phase_scale": scale_factor(rec, truth),
        f"{prefix}.ncc": ncc(rec, truth),
        f"{prefix}.frc_resolution_nm": frc_resolution(q, curve, threshold),
    }


def _parameter_metrics(ds: xr.Dataset, sfx: str) -> dict:
    out = {}
    if f"true_defocus_nm{sfx}" not in ds or f"defocus_nm_ad{sfx}" not in ds:
        return out
    key = "ad" + sfx.replace("_", ".")
    true_df = ds[f"true_defocus_nm{sfx}"].values
    rec_df = ds[f"defocus_nm_ad{sfx}"].values
    nz = np.abs(true_df) > 0
    if nz.any():
        out[f"{key}.defocus_rel_error"] = float(
            np.max(np.abs(rec_df[nz] - true_df[nz]) / np.abs(true_df[nz]))
        )
        out[f"{key}.defocus_rel_error_nominal"] = float(
            np.max(np.abs(ds["defocus"].values[nz] - true_df[nz]) / np.abs(true_df[nz]))
        )
    err = ds[f"shift_px{sfx}"].values - ds[f"true_shift_px{sfx}"].values
    out[f"{key}.shift_error_max_px"] = float(np.max(np.abs(err)))
    out[f"{key}.shift_error_rms_px"] = float(np.sqrt(np.mean(err**2)))
    out[f"{key}.shift_true_max_px"] = float(np.max(np.abs(ds[f"true_shift_px{sfx}"].values)))
    out[f"{key}.rotation_error_max_deg"] = float(
        np.max(np.abs(ds[f"rotation_deg{sfx}"].values - ds[f"true_rotation_deg{sfx}"].values))
    )
    out[f"{key}.magnification_error_max"] = float(
        np.max(np.abs(ds[f"magnification{sfx}"].values - ds[f"true_magnification{sfx}"].values))
    )
    return out


def analyze(inputs: list[xr.Dataset], opts: AnalyzeOptions) -> xr.Dataset:
    """Induction maps and metrics of an ``ltem.phase`` store (module docstring).

    Parameters
    ----------
    inputs : [ltem.phase Dataset]
        The reconstruction store (it carries the series' ``true_*`` variables when simulated).
    opts : AnalyzeOptions

    Returns
    -------
    xarray.Dataset (kind ``ltem.analysis``)
        ``phase_{ad,tie}`` [rad], ``bx_{ad,tie}_tnm``, ``by_{ad,tie}_tnm`` [T nm],
        ``bx_{ad,tie}_t``, ``by_{ad,tie}_t`` [T] (when the thickness is known), the truths
        ``true_phase``, ``true_bx_tnm``, ``true_by_tnm`` when present, ``phase_ad_sigma``;
        ``attrs["metrics"]``.
    """
    ds = inputs[0]
    if "phase_tie" not in ds:
        raise ValueError("ltem.phase: no variable 'phase_tie'; is this a reconstruct store?")
    pixel = float(ds.attrs["pixel_size_nm"])
    thickness = opts.thickness_nm or ds.attrs.get("thickness_nm")
    rc = ("row", "col")
    out: dict = {}
    metrics: dict = {}
    methods = ["tie"] + (["ad"] if "phase_ad" in ds else [])
    truth = None
    if "true_phase_m" in ds:
        truth = ds["true_phase_m"].values + ds["true_phase_e"].values
        out["true_phase"] = (rc, truth, {"units": "rad"})
        out["true_bx_tnm"] = (rc, ds["true_bx_tnm"].values, {"units": "T nm"})
        out["true_by_tnm"] = (rc, ds["true_by_tnm"].values, {"units": "T nm"})
    for m in methods:
        phase = ds[f"phase_{m}"].values
        out[f"phase_{m}"] = (rc, phase, {"units": "rad"})
        magnetic = ds[f"phase_{m}_m"].values if f"phase_{m}_m" in ds else phase
        bx, by = induction_from_phase(magnetic, pixel)
        out[f"bx_{m}_tnm"] = (rc, bx, {"units": "T nm"})
        out[f"by_{m}_tnm"] = (rc, by, {"units": "T nm"})
        if thickness:
            out[f"bx_{m}_t"] = (rc, bx / thickness, {"units": "T"})
            out[f"by_{m}_t"] = (rc, by / thickness, {"units": "T"})
            metrics[f"{m}.b_max_t"] = float(np.max(np.hypot(bx, by)) / thickness)
        metrics[f"{m}.b_t_max_tnm"] = float(np.max(np.hypot(bx, by)))
        metrics[f"{m}.phase_range_rad"] = float(np.ptp(phase))
        if truth is not None:
            metrics.update(_phase_metrics(m, phase, truth, pixel, opts.frc_threshold))
            tb = np.hypot(ds["true_bx_tnm"].values, ds["true_by_tnm"].values)
            err = np.hypot(bx - ds["true_bx_tnm"].values, by - ds["true_by_tnm"].values)
            metrics[f"{m}.b_rel_l2"] = float(np.linalg.norm(err) / np.linalg.norm(tb))
            if f"phase_{m}_m" in ds:
                tm = ds["true_phase_m"].values
                metrics.update(
                    _phase_metrics(
                        f"{m}.magnetic", ds[f"phase_{m}_m"].values, tm, pixel, opts.frc_threshold
                    )
                )
    if "phase_ad_sigma" in ds:
        out["phase_ad_sigma"] = (rc, ds["phase_ad_sigma"].values, {"units": "rad"})
        metrics["ad.phase_sigma_mean_rad"] = float(ds["phase_ad_sigma"].mean())
        if truth is not None:
            e = ds["phase_ad"].values - truth
            e = e - e.mean()
            metrics["ad.phase_error_rms_rad"] = float(np.sqrt(np.mean(e**2)))
    ad = ds.attrs.get("ad", {})
    for key in (
        "seconds",
        "cpu_seconds",
        "iterations",
        "evaluations",
        "chi2_per_pixel",
        "tv_weight",
        "phase_debias_factor",
        "tv_highpass_weight",
        "tv_highpass_band_cycles_per_px",
        "convergence",
        "optimizer",
    ):
        if key in ad:
            metrics[f"ad.{key}"] = ad[key]
    if truth is not None:
        for sfx in ("", "_flip"):
            metrics.update(_parameter_metrics(ds, sfx))
        if "theta_c_rad_ad" in ds:
            metrics["ad.theta_c_rad"] = float(ds["theta_c_rad_ad"])
            metrics["true.theta_c_rad"] = float(ds.attrs.get("theta_c_rad", np.nan))
        if "ad.phase_rel_l2" in metrics:
            metrics["tie_over_ad.phase_rel_l2"] = (
                metrics["tie.phase_rel_l2"] / metrics["ad.phase_rel_l2"]
            )
    coords = {c: ds[c] for c in rc}
    attrs = {k: v for k, v in ds.attrs.items() if k not in ("scopeflow", "provenance")}
    attrs["metrics"] = metrics
    return xr.Dataset(out, coords=coords, attrs=attrs)
