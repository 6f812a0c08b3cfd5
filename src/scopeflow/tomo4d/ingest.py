"""Read a measured tilt series of 4D-STEM scans into the sparse series store (``ingest``).

One file per tilt is opened lazily with :func:`scopeflow.io.fourd.open_4dstem` (MIB, EMD/HDF5,
DM4, EMPAD; calibrations from the file, config overrides win) and converted chunk by chunk
(scan rows) to the (pixel, counts) entries of its non-zero detector pixels, so memory stays
bounded by one chunk plus the sparse counts. Every tilt must share the scan shape, the detector
shape and the calibrations; the detector pixel size must be (or be convertible to) 1/Å.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from scopeflow.io.fourd import open_4dstem
from scopeflow.optics.wavelength import electron_wavelength
from scopeflow.tomo4d.options import IngestOptions
from scopeflow.tomo4d.simulate import series_dataset

__all__ = ["ingest", "to_sparse"]


def to_sparse(cube: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse entries of a block of patterns.

    Parameters
    ----------
    cube : (rows, cols, k_row, k_col) counts

    Returns
    -------
    pixel : (m,) uint16 flat detector index, counts : (m,) uint16, nnz : (rows * cols,) int
    """
    n_pat = cube.shape[0] * cube.shape[1]
    flat = np.rint(np.clip(cube, 0, 65535)).astype(np.uint16).reshape(n_pat, -1)
    pat, pix = np.nonzero(flat)
    return pix.astype(np.uint16), flat[pat, pix], np.bincount(pat, minlength=n_pat)


def ingest(inputs: list, opts: IngestOptions) -> xr.Dataset:
    """Ingest stage (see module docstring)."""
    if inputs:
        raise ValueError("tomo4d ingest takes no input store")
    if len(opts.paths) != len(opts.tilt_deg):
        raise ValueError(
            f"ingest: {len(opts.paths)} files but {len(opts.tilt_deg)} tilt angles (tilt_deg)"
        )
    override = {
        "beam_energy_eV": opts.beam_energy_ev,
        "scan_step_nm": opts.scan_step_nm,
        "k_pixel_inv_A": opts.k_pixel_inv_a,
        "convergence_mrad": opts.convergence_mrad,
    }
    pix_all, cnt_all, nnz_all, ref = [], [], [], None
    for path in opts.paths:
        ds = open_4dstem(
            path,
            opts.format,
            dataset=opts.dataset or None,
            scan_shape=opts.scan_shape or None,
            calibration=override,
        )
        attrs = dict(ds.attrs)
        if "k_pixel_inv_A" not in attrs:
            lam_a = electron_wavelength(attrs["beam_energy_eV"]) * 10.0
            attrs["k_pixel_inv_A"] = attrs["k_pixel_mrad"] * 1e-3 / lam_a
        shape = tuple(ds["data"].shape)
        if shape[2] != shape[3]:
            raise ValueError(f"ingest: {path}: detector {shape[2:]} is not square")
        if ref is None:
            ref = (shape, attrs)
        elif shape != ref[0]:
            raise ValueError(
                f"ingest: {path}: shape {shape} differs from the first file's {ref[0]}"
            )
        data = ds["data"].data
        nnz_tilt = []
        for r0 in range(0, shape[0], data.chunks[0][0]):
            block = np.asarray(data[r0 : r0 + data.chunks[0][0]].compute())
            pix, cnt, nnz = to_sparse(block)
            pix_all.append(pix)
            cnt_all.append(cnt)
            nnz_tilt.append(nnz)
        nnz_all.append(np.concatenate(nnz_tilt).reshape(shape[0], shape[1]))
    shape, attrs = ref
    meta = {
        "beam_energy_eV": float(attrs["beam_energy_eV"]),
        "k_pixel_inv_A": float(attrs["k_pixel_inv_A"]),
        "detector_shape": [int(shape[2]), int(shape[3])],
        "tilt_axis_deg": float(opts.tilt_axis_deg),
        "convergence_mrad": float(attrs.get("convergence_mrad", 1.0)),
        "source": [str(p) for p in opts.paths],
    }
    return series_dataset(
        np.concatenate(pix_all),
        np.concatenate(cnt_all),
        np.stack(nnz_all),
        np.asarray(opts.tilt_deg, float),
        meta,
        float(attrs["scan_step_nm"]),
    )
