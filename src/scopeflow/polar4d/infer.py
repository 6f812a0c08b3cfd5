"""Stage ``infer``: stream the network and the baselines over a 4D-STEM scan.

The scan is read ``chunk_rows`` scan rows at a time (one dask chunk computed per step), so the
peak memory is one chunk of patterns plus the small output maps, whatever the data set size.
Patterns on another detector grid are resampled by the network's own input sampling (it works in
mrad); the PCA + ridge baseline needs the training grid and is skipped when the grids differ.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
import xarray as xr

from scopeflow.nn import fold_batchnorm, load_state_bytes, select_device
from scopeflow.polar4d.baselines import apply_linear, apply_pca_ridge, com_mrad
from scopeflow.polar4d.metrics import polarization_uc_cm2
from scopeflow.polar4d.model import Polar4DNet, predict
from scopeflow.polar4d.options import InferOptions

__all__ = ["load_model", "infer_scan", "cell_block", "block_sum"]

log = logging.getLogger(__name__)


def load_model(model_store: xr.Dataset) -> Polar4DNet:
    """Rebuild the network of a ``polar4d.model`` store for inference.

    Weights loaded, batch norms folded into the convolutions, channels-last memory format
    (about 2x faster convolutions on CPU), eval mode.
    """
    cfg = dict(model_store.attrs["architecture"])
    cfg.pop("name", None)
    model = Polar4DNet(**cfg)
    load_state_bytes(model, model_store["weights"].values)
    return fold_batchnorm(model).to(memory_format=torch.channels_last).eval()


def _k_pixel(scan: xr.Dataset) -> float:
    if scan.attrs.get("k_pixel_mrad") is None:
        raise ValueError(
            "polar4d infer: the scan has no 'k_pixel_mrad' attribute (detector pixel in mrad); "
            "set ingest k_pixel_mrad"
        )
    return float(scan.attrs["k_pixel_mrad"])


def cell_block(scan: xr.Dataset, lattice_A: float) -> int:
    """Probes per unit-cell edge of a scan: ``n = a / scan_step``, required to be an integer.

    A sum of the patterns over a uniform ``n x n`` grid spanning one cell is the cell's
    position-averaged pattern whatever the grid's offset to the lattice
    (:func:`scopeflow.polar4d.simulate.pacbed`), so it needs no knowledge of where the atoms are.
    """
    step = scan.attrs.get("scan_step_nm")
    if step is None:
        raise ValueError(
            "polar4d infer: cell_average needs the scan step: the scan has no 'scan_step_nm' "
            "attribute (set ingest scan_step_nm)"
        )
    ratio = 0.1 * lattice_A / float(step)
    n = int(round(ratio))
    if n < 1 or abs(ratio - n) > 0.02 * n:
        raise ValueError(
            f"polar4d infer: cell_average needs an integer number of probes per unit cell, got "
            f"lattice {lattice_A:g} Å / scan step {10 * float(step):g} Å = {ratio:.3f}"
        )
    return n


def block_sum(a: np.ndarray, n: int) -> np.ndarray:
    """Sum ``n x n`` blocks over the first two axes (incomplete edge blocks dropped).

    Parameters
    ----------
    a : (rows, cols, ...) array

    Returns
    -------
    (rows // n, cols // n, ...) array
    """
    r, c = a.shape[0] // n, a.shape[1] // n
    return a[: r * n, : c * n].reshape(r, n, c, n, *a.shape[2:]).sum(axis=(1, 3))


def infer_scan(inputs: list[xr.Dataset], opts: InferOptions) -> xr.Dataset:
    """Stage ``infer``: a ``polar4d.pmap`` store.

    Parameters
    ----------
    inputs : [scan, model]
        ``polar4d.scan`` (``data (scan_row, scan_col, k_row, k_col)``) and ``polar4d.model``.

    Returns
    -------
    xarray.Dataset
        ``disp_pm (scan_row, scan_col, component)`` and ``sigma_pm`` [pm],
        ``polarization (scan_row, scan_col, component)`` [µC/cm²], ``thickness_nm``,
        ``com_disp_pm`` / ``pca_disp_pm`` baselines [pm]; attrs ``patterns_per_second`` (network
        inputs per second), ``cell_block`` (probes per cell edge summed into one input; 1 = one
        P per probe), ``input``, ``born_charge_ti``, ``device``. With cell averaging the maps
        have one pixel per unit cell at the mean coordinates of its probes.
    """
    scan, model_store = inputs
    data = scan["data"]
    if data.dims != ("scan_row", "scan_col", "k_row", "k_col"):
        raise ValueError(f"polar4d infer: scan data dims {data.dims} are not canonical")
    kpix = _k_pixel(scan)
    device = select_device(opts.device)
    model = load_model(model_store)
    model.k_pixel_mrad = kpix  # sample the scan's own grid in mrad
    center = scan.attrs.get("beam_center_px")  # set by ingest (found or given); None: k // 2
    center = tuple(float(c) for c in center) if center is not None else None
    model.k_center_px = center
    model.to(device)
    k_shape = data.shape[-2:]
    same_grid = (
        list(k_shape) == list(model_store.attrs["k_shape"])
        and np.isclose(kpix, float(model_store.attrs["architecture"]["k_pixel_mrad"]), rtol=1e-3)
        and (center is None or np.allclose(center, (k_shape[0] // 2, k_shape[1] // 2), atol=0.05))
    )
    pca = {
        "mean": model_store["pca_mean"].values,
        "components": model_store["pca_components"].values,
        "coef": model_store["pca_coef"].values,
        "intercept": model_store["pca_intercept"].values,
    }
    com_a = model_store["com_matrix"].values
    lattice = float(scan.attrs.get("lattice_A", model_store.attrs.get("lattice_A", 3.947)))
    averaged = opts.cell_average == "on" or (
        opts.cell_average == "auto" and int(model_store.attrs.get("position_grid", 0)) > 0
    )
    n = cell_block(scan, lattice) if averaged else 1
    rows, cols = data.shape[0] // n, data.shape[1] // n
    step = n * max(1, opts.chunk_rows // n)  # whole cells per read
    out = {v: np.full((rows, cols, 3), np.nan, np.float32) for v in ("disp", "sigma", "com", "pca")}
    thick = np.full((rows, cols), np.nan, np.float32)
    seconds = 0.0
    for s0 in range(0, rows * n, step):
        s1 = min(rows * n, s0 + step)
        block = np.asarray(data[s0:s1].values, np.float32)
        if not np.all(np.isfinite(block)):
            raise ValueError(f"polar4d infer: NaN/inf in the scan data at scan rows {s0}-{s1 - 1}")
        block = block_sum(block, n) if n > 1 else block
        r0, r1 = s0 // n, s1 // n
        flat = block.reshape(-1, *block.shape[-2:])
        t0 = time.perf_counter()
        mean, sigma, th = predict(model, torch.from_numpy(flat).to(device), tta=opts.tta)
        seconds += time.perf_counter() - t0
        out["disp"][r0:r1] = mean.reshape(r1 - r0, cols, 3)
        out["sigma"][r0:r1] = sigma.reshape(r1 - r0, cols, 3)
        thick[r0:r1] = th.reshape(r1 - r0, cols)
        out["com"][r0:r1, :, :2] = apply_linear(com_a, com_mrad(flat, kpix, center)).reshape(
            r1 - r0, cols, 2
        )
        if same_grid:
            out["pca"][r0:r1] = apply_pca_ridge(pca, flat).reshape(r1 - r0, cols, 3)
        log.info("polar4d infer: rows %d-%d of %d", r0, r1 - 1, rows)
    dims = ("scan_row", "scan_col", "component")
    coords = [
        scan[d].values[: m * n].reshape(m, n).mean(1)
        for d, m in zip(dims[:2], (rows, cols), strict=True)
    ]
    pol = polarization_uc_cm2(out["disp"], lattice, opts.born_charge_ti).astype(np.float32)
    return xr.Dataset(
        {
            "disp_pm": (dims, out["disp"], {"units": "pm", "long_name": "Ti displacement"}),
            "sigma_pm": (dims, out["sigma"], {"units": "pm", "long_name": "1-sigma uncertainty"}),
            "polarization": (dims, pol, {"units": "µC/cm²"}),
            "thickness_nm": (("scan_row", "scan_col"), thick, {"units": "nm"}),
            "com_disp_pm": (dims, out["com"], {"units": "pm", "long_name": "calibrated COM"}),
            "pca_disp_pm": (dims, out["pca"], {"units": "pm", "long_name": "PCA + ridge"}),
        },
        coords={
            "scan_row": ("scan_row", coords[0], scan["scan_row"].attrs),
            "scan_col": ("scan_col", coords[1], scan["scan_col"].attrs),
            "component": ("component", ["dx", "dy", "dz"], {"units": "1"}),
        },
        attrs={
            "patterns_per_second": float(rows * cols / max(seconds, 1e-9)),
            "cell_block": n,
            "input": f"position-averaged over {n}x{n} probes per unit cell"
            if averaged
            else "single probe position",
            "tta": bool(opts.tta),
            "born_charge_ti": float(opts.born_charge_ti),
            "lattice_A": lattice,
            "polarization_convention": "P = e Z*_Ti u_Ti / a^3 (Ti off-centring only)",
            "thermal_model": model_store.attrs.get("thermal_model", "unknown"),
            "device": str(device),
        },
    )
