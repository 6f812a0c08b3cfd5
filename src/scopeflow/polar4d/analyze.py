"""Stage ``analyze``: metrics vs truth, <111> rotation statistics and topological density.

Topological density of the unit polarization field ``n``: ``q = n . (d_row n x d_col n) / 4 pi``
(the skyrmion number density; Nagaosa & Tokura, Nat. Nanotechnol. 8, 899 (2013),
doi:10.1038/nnano.2013.243), central differences on the scan grid; its sum is the total charge.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from scopeflow.io.store import has_ground_truth
from scopeflow.polar4d.infer import block_sum
from scopeflow.polar4d.metrics import displacement_metrics
from scopeflow.polar4d.options import AnalyzeOptions

__all__ = ["analyze_stage", "angle_to_111_deg", "topological_density"]

_DIRS_111 = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)]) / np.sqrt(3)


def angle_to_111_deg(p: np.ndarray) -> np.ndarray:
    """Angle between each vector ``(..., 3)`` and the nearest <111> direction [deg]."""
    n = p / np.linalg.norm(p, axis=-1, keepdims=True).clip(1e-12)
    cos = np.clip((n @ _DIRS_111.T).max(axis=-1), -1, 1)
    return np.degrees(np.arccos(cos))


def topological_density(p: np.ndarray) -> np.ndarray:
    """Skyrmion-number density of a ``(rows, cols, 3)`` vector field [1/cell²]."""
    n = p / np.linalg.norm(p, axis=-1, keepdims=True).clip(1e-12)
    dr = np.gradient(n, axis=0)
    dc = np.gradient(n, axis=1)
    return np.einsum("...i,...i->...", n, np.cross(dr, dc)) / (4 * np.pi)


def analyze_stage(inputs: list[xr.Dataset], opts: AnalyzeOptions) -> xr.Dataset:
    """Stage ``analyze``: a ``polar4d.analysis`` store with ``attrs["metrics"]``.

    Parameters
    ----------
    inputs : [scan, pmap, model]

    Returns
    -------
    xarray.Dataset
        ``angle_111_deg (scan_row, scan_col)``, ``topological_density (scan_row, scan_col)``,
        ``error_pm (scan_row, scan_col, component)`` when truth exists; flat metrics.
    """
    scan, pmap, model = inputs
    disp = pmap["disp_pm"].values
    metrics: dict = {
        "infer.patterns_per_second": float(pmap.attrs["patterns_per_second"]),
        "infer.tta": str(pmap.attrs.get("tta")),
        "thermal_model": str(scan.attrs.get("thermal_model", "unknown")),
        "model.thermal_model": str(model.attrs.get("thermal_model", "unknown")),
        "device": str(pmap.attrs.get("device", "cpu")),
        "polarization.mean_abs_uC_cm2": float(
            np.nanmean(np.linalg.norm(pmap["polarization"].values, axis=-1))
        ),
        "born_charge_ti": float(pmap.attrs["born_charge_ti"]),
        "infer.input": str(pmap.attrs.get("input", "single probe position")),
    }
    for k, v in model.attrs.get("validation", {}).items():
        metrics[f"validation.{k}"] = v
    ang = angle_to_111_deg(disp)
    q = topological_density(disp)
    metrics["rotation.median_angle_to_111_deg"] = float(np.nanmedian(ang))
    metrics["rotation.fraction_within_20deg_of_111"] = float(np.nanmean(ang < 20.0))
    metrics["topology.total_charge"] = float(np.nansum(q))
    dims = ("scan_row", "scan_col")
    out = {
        "angle_111_deg": (dims, ang.astype(np.float32), {"units": "deg"}),
        "topological_density": (dims, q.astype(np.float32), {"units": "1/cell^2"}),
    }
    if has_ground_truth(scan) and "true_disp_pm" in scan:
        n = int(pmap.attrs.get("cell_block", 1))  # the truth averaged over each mapped cell
        true_map = block_sum(scan["true_disp_pm"].values, n) / n**2
        truth = true_map.reshape(-1, 3)
        thr = opts.sign_threshold_pm
        metrics.update(displacement_metrics(disp.reshape(-1, 3), truth, "", thr))
        metrics.update(
            displacement_metrics(pmap["com_disp_pm"].values[..., :2].reshape(-1, 2), truth, "com.")
        )
        pca = pmap["pca_disp_pm"].values.reshape(-1, 3)
        if np.isfinite(pca).all():
            metrics.update(displacement_metrics(pca, truth, "pca.", thr))
        mean = np.broadcast_to(model["mean_disp_pm"].values, truth.shape)
        mm = displacement_metrics(mean, truth, "mean.", thr)
        metrics.update(mm)
        metrics["dz.mean_baseline_rmse_pm"] = mm["mean.dz.rmse_pm"]
        true_ang = angle_to_111_deg(true_map)
        metrics["rotation.true_median_angle_to_111_deg"] = float(np.median(true_ang))
        metrics["topology.true_total_charge"] = float(np.sum(topological_density(true_map)))
        sig = pmap["sigma_pm"].values.reshape(-1, 3)
        z = (disp.reshape(-1, 3) - truth) / sig.clip(1e-6)
        metrics["uncertainty.z_rms"] = float(np.sqrt(np.nanmean(z**2)))
        err = (disp - true_map).astype(np.float32)
        out["error_pm"] = (("scan_row", "scan_col", "component"), err, {"units": "pm"})
    ds = xr.Dataset(out, coords={"scan_row": pmap["scan_row"], "scan_col": pmap["scan_col"]})
    if "error_pm" in out:
        ds = ds.assign_coords(component=pmap["component"])
    ds.attrs["metrics"] = metrics
    return ds
