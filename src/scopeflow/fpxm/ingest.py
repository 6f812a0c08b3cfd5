"""Measured FP-DFXM stacks into the canonical ``fpxm.stack`` store (the ``ingest`` stage).

HDF5/NeXus-style files (h5py): images ``(shot, row, col)`` or ``(efield, shot, row, col)`` in
``image_path``; pupil shifts ``(shot, 2)`` [mrad] in ``shift_path``; calibrations as attributes
of the image dataset or its group, under the canonical names ``energy_ev``, ``reflection``,
``pixel_size_nm`` (object pixel), ``upsampling``, ``na_rms``, ``aperture_mrad``,
``detector_blur_px``. TIFF stacks (tifffile/rosettasciio): images only; the shifts and the
calibrations come from the options. A calibration found in neither raises a clear error.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import xarray as xr

from scopeflow.fpxm.options import IngestOptions
from scopeflow.io.ingest import IngestError, read_instrument_file, resolve_calibration
from scopeflow.optics.wavelength import xray_wavelength

__all__ = ["ingest"]

_REQUIRED = ("energy_ev", "reflection", "pixel_size_nm", "upsampling", "na_rms", "aperture_mrad")


def _format(opts: IngestOptions, path: Path) -> str:
    if opts.format != "auto":
        return opts.format
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5", ".nxs", ".hdf"):
        return "hdf5"
    if suffix in (".tif", ".tiff"):
        return "tiff"
    raise IngestError(f"{path}: cannot tell the format from the suffix; set ingest.format")


def _shifts(opts: IngestOptions, path: Path, fmt: str, n_shot: int) -> np.ndarray:
    if opts.shifts_mrad:
        vals = np.asarray(opts.shifts_mrad, float)
        if vals.size != 2 * n_shot:
            raise IngestError(
                f"{path}: shifts_mrad holds {vals.size} values, need 2 per shot ({2 * n_shot})"
            )
        return vals.reshape(n_shot, 2)
    if fmt != "hdf5":
        raise IngestError(f"{path}: a TIFF stack has no shift grid; set ingest.shifts_mrad")
    with h5py.File(path, "r") as f:
        if opts.shift_path not in f:
            raise IngestError(
                f"{path}: pupil shifts {opts.shift_path!r} not found; set ingest.shift_path or "
                "ingest.shifts_mrad"
            )
        shifts = np.asarray(f[opts.shift_path][()], float)
    if shifts.shape != (n_shot, 2):
        raise IngestError(f"{path}: shifts have shape {shifts.shape}, expected ({n_shot}, 2)")
    return shifts


def ingest(inputs: list, opts: IngestOptions) -> xr.Dataset:
    """The ``ingest`` stage: a measured stack -> ``fpxm.stack`` (no ground truth).

    Raises
    ------
    IngestError
        Unreadable file, wrong image dims, NaN, or a missing calibration (named, with the
        option that would supply it).
    """
    if inputs:
        raise ValueError("fpxm ingest takes no input stores")
    if not opts.path:
        raise IngestError("fpxm ingest: set ingest.path")
    path = Path(opts.path)
    fmt = _format(opts, path)
    raw = read_instrument_file(path, fmt, dataset=opts.image_path if fmt == "hdf5" else None)
    images = np.asarray(raw.data, dtype=np.float32)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        raise IngestError(
            f"{raw.source}: images must be (shot, row, col) or (efield, shot, row, col) with "
            f"square frames, got shape {images.shape}"
        )
    if not np.all(np.isfinite(images)):
        raise IngestError(f"{raw.source}: images contain NaN/inf")
    found = {k: raw.metadata.get(k) for k in (*_REQUIRED, "detector_blur_px", "efield_mv_per_m")}
    overrides = {
        "energy_ev": opts.energy_ev,
        "reflection": list(opts.reflection) or None,
        "pixel_size_nm": opts.pixel_size_nm,
        "upsampling": opts.upsampling,
        "na_rms": opts.na_rms,
        "aperture_mrad": opts.aperture_mrad,
    }
    cal = resolve_calibration(
        found, overrides, _REQUIRED, source=raw.source, config_where="fpxm.ingest"
    )
    shifts = _shifts(opts, path, fmt, images.shape[1])
    efield = np.asarray(cal.get("efield_mv_per_m", [0.0] * images.shape[0]), float).ravel()
    if efield.size != images.shape[0]:
        raise IngestError(f"{raw.source}: {images.shape[0]} field states but efield {efield}")
    n_img = images.shape[-1]
    up = int(cal["upsampling"])
    pix = float(cal["pixel_size_nm"])
    img = (np.arange(n_img) - n_img / 2) * pix * up
    h, k, l_ = (int(v) for v in cal["reflection"])
    g_norm = float(np.hypot(h, l_))
    if k != 0 or g_norm == 0:
        raise IngestError(f"{raw.source}: reflection {cal['reflection']} needs k = 0")
    attrs = {
        "technique": "fpxm",
        "source": raw.source,
        "energy_ev": float(cal["energy_ev"]),
        "wavelength_nm": xray_wavelength(float(cal["energy_ev"])),
        "reflection": [h, k, l_],
        "lattice_a0_nm": opts.lattice_a0_nm,
        "g_unit_rowcol": [l_ / g_norm, h / g_norm],
        "g_magnitude_rad_per_nm": 2 * np.pi * g_norm / opts.lattice_a0_nm,
        "pixel_size_nm": pix,
        "image_pixel_size_nm": pix * up,
        "upsampling": up,
        "na_rms": float(cal["na_rms"]),
        "aperture_mrad": float(cal["aperture_mrad"]),
        "detector_blur_px": float(cal.get("detector_blur_px", opts.detector_blur_px)),
    }
    coords = {
        "efield": ("efield", efield, {"units": "MV/m"}),
        "shot": ("shot", np.arange(images.shape[1]), {"units": "1"}),
        "axis": ("axis", ["row", "col"]),
        "mode": ("mode", np.arange(1), {"units": "1"}),
        "row": ("row", img, {"units": "nm"}),
        "col": ("col", img, {"units": "nm"}),
    }
    data = {
        "image": (("efield", "shot", "row", "col"), images, {"units": "counts"}),
        "pupil_shift": (("shot", "axis"), shifts, {"units": "mrad"}),
        "mode_offset": (("mode", "axis"), np.zeros((1, 2)), {"units": "mrad"}),
        "mode_weight": (("mode",), np.ones(1), {"units": "1"}),
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)
