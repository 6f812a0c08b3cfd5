"""The ``ingest`` stage: a measured through-focus series into an ``ltem.series`` store.

Reads a TIFF stack or DM3/DM4/EMD file(s) with :func:`scopeflow.io.ingest.read_instrument_file`
(rosettasciio / tifffile): either one file holding the stack ``(defocus, row, col)`` or one file
per image (``paths``). Calibrations come from the file metadata, overridden by the options:

- defocus values: ``defocus_nm`` option, else the files' metadata (``defocus_nm`` found by the
  reader, or a navigation axis named like "defocus"/"focus" with length units). A series
  **without defocus values is refused**; scopeflow never guesses them.
- pixel size and beam energy: from the file, else the options; missing ones are an error.
- sign convention: scopeflow's ``defocus > 0`` is overfocus (wave propagated downstream).
  Instruments and papers differ; ``flip_defocus_sign`` multiplies the values by -1.

A flipped-sample series (``flip_path``, same defocus values, already un-mirrored and registered)
becomes ``image_flip``. The images are stored as float32 in the file's units; set ``dose`` only
when they are electron counts (the reconstruction then uses a Poisson likelihood).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import xarray as xr

from scopeflow.io.ingest import IngestError, length_to_nm, read_instrument_file, resolve_calibration
from scopeflow.ltem.options import IngestOptions
from scopeflow.ltem.simulate import DEFOCUS_CONVENTION, reference_index

__all__ = ["ingest"]

log = logging.getLogger(__name__)


def _defocus_from_axes(raw) -> list[float] | None:
    for a in raw.axes:
        name = str(a.get("name", "")).lower()
        if a.get("navigate") and ("focus" in name):
            step = length_to_nm(a.get("scale", 1.0), a.get("units"))
            start = length_to_nm(a.get("offset", 0.0), a.get("units"))
            if step is not None and start is not None:
                return [start + i * step for i in range(int(a["size"]))]
    return None


def _read(paths: list[str], fmt: str) -> tuple[np.ndarray, dict, list]:
    """Stack the images of one series; return (images, calibrations found, defocus or None)."""
    images, found, defocus = [], {}, []
    for p in paths:
        raw = read_instrument_file(p, fmt)
        data = np.asarray(raw.data)
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3:
            raise IngestError(f"{raw.source}: expected 2-D images or a 3-D stack, got {data.shape}")
        images.append(data)
        for k, v in raw.metadata.items():
            if k != "raw" and v is not None:
                found.setdefault(k, v)
        df = raw.metadata.get("defocus_nm")
        df = _defocus_from_axes(raw) if df is None else df
        if df is None:
            defocus = None
        elif defocus is not None:
            defocus.extend(np.atleast_1d(np.asarray(df, dtype=float)).tolist())
    shapes = {im.shape[1:] for im in images}
    if len(shapes) != 1:
        raise IngestError(f"{paths}: images of different sizes {sorted(shapes)}")
    return np.concatenate(images).astype(np.float32), found, defocus


def ingest(inputs: list, opts: IngestOptions) -> xr.Dataset:
    """Read a through-focus series (module docstring).

    Returns
    -------
    xarray.Dataset (kind ``ltem.series``)
        ``image (defocus, row, col)`` float32 [file units], optional ``image_flip``; coords
        ``defocus`` [nm], ``row``, ``col`` [nm]; attrs ``energy_ev``, ``pixel_size_nm``,
        ``defocus_nm``, ``defocus_sign_convention``, ``cs_mm``, ``theta_c_rad``,
        ``defocus_spread_nm``, ``thickness_nm`` (if known), ``dose``, ``source``.
    """
    del inputs
    paths = list(opts.paths) or ([opts.path] if opts.path else [])
    if not paths:
        raise IngestError("ingest: set 'path' (a stack) or 'paths' (one file per defocus)")
    images, found, file_defocus = _read(paths, opts.format)
    where = f"{', '.join(paths)} ({opts.format})"
    if opts.defocus_nm:
        defocus = [float(d) for d in opts.defocus_nm]
    elif file_defocus:
        defocus = file_defocus
    else:
        raise IngestError(
            f"{where}: no defocus values in the file metadata and none in the config; "
            "a through-focus series needs them: set ingest.defocus_nm (one per image, nm, "
            "> 0 overfocus; see flip_defocus_sign)"
        )
    if len(defocus) != images.shape[0]:
        raise IngestError(
            f"{where}: {images.shape[0]} images but {len(defocus)} defocus values {defocus}"
        )
    if np.unique(defocus).size < 2:
        raise IngestError(f"{where}: needs at least two distinct defocus values, got {defocus}")
    if opts.flip_defocus_sign:
        defocus = [-d for d in defocus]
    cal = resolve_calibration(
        found,
        {"pixel_size_nm": opts.pixel_size_nm, "energy_ev": opts.energy_ev},
        ("pixel_size_nm", "energy_ev"),
        source=where,
        config_where="ingest",
    )
    if not np.isfinite(images).all():
        raise IngestError(f"{where}: the images contain NaN or inf")
    px = float(cal["pixel_size_nm"])
    n_r, n_c = images.shape[1:]
    rc = ("defocus", "row", "col")
    data_vars = {"image": (rc, images, {"units": "counts" if opts.dose else "file units"})}
    if opts.flip_path:
        flip, _, _ = _read([opts.flip_path], opts.format)
        if flip.shape != images.shape:
            raise IngestError(f"{opts.flip_path}: flipped series {flip.shape} != {images.shape}")
        data_vars["image_flip"] = (rc, flip, data_vars["image"][2])
    convention = DEFOCUS_CONVENTION + (
        "; values multiplied by -1 on ingest (flip_defocus_sign)" if opts.flip_defocus_sign else ""
    )
    attrs = {
        "energy_ev": float(cal["energy_ev"]),
        "pixel_size_nm": px,
        "defocus_nm": [float(d) for d in defocus],
        "defocus_sign_convention": convention,
        "cs_mm": float(opts.cs_mm),
        "theta_c_rad": float(opts.theta_c_rad),
        "defocus_spread_nm": float(opts.defocus_spread_nm),
        "dose": float(opts.dose or 0.0),
        "flip": bool(opts.flip_path),
        "reference_index": reference_index(defocus),
        "source": [str(Path(p)) for p in paths] + ([opts.flip_path] if opts.flip_path else []),
    }
    if opts.thickness_nm:
        attrs["thickness_nm"] = float(opts.thickness_nm)
    coords = {
        "defocus": ("defocus", np.asarray(defocus, float), {"units": "nm"}),
        "row": ("row", np.arange(n_r) * px, {"units": "nm"}),
        "col": ("col", np.arange(n_c) * px, {"units": "nm"}),
    }
    log.info("ingested %d images %dx%d from %s", images.shape[0], n_r, n_c, where)
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
