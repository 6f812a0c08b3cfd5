"""Stage ``ingest``: a real movie (DM3/DM4, EMD, TIFF) as a canonical ``defects.movie`` store.

DM3/DM4 and EMD files are read with rosettasciio (``rsciio``), TIFF stacks with tifffile (ImageJ
``unit``/``finterval`` metadata and resolution tags); pixel size and frame time come from the file's
axes calibration unless the options override them. A calibration that is neither in the file
nor in the options is an error: it is never guessed.
"""

from __future__ import annotations

import pathlib

import numpy as np
import xarray as xr

from scopeflow.defects.options import IngestOptions
from scopeflow.defects.simulate import movie_dataset

__all__ = ["read_file", "ingest_movie"]

_LENGTH_TO_A = {
    "Å": 1.0,
    "A": 1.0,
    "angstrom": 1.0,
    "nm": 10.0,
    "pm": 0.01,
    "µm": 1e4,
    "um": 1e4,
    "m": 1e10,
}
_TIME_TO_S = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "min": 60.0}
_READERS = {".dm3": "dm", ".dm4": "dm", ".emd": "emd", ".tif": "tiff", ".tiff": "tiff"}


def read_file(path: str, fmt: str = "auto") -> dict:
    """Read the first image/movie signal of a file with rosettasciio.

    Returns
    -------
    dict
        rsciio signal dict (``data``, ``axes``, ``metadata``, ...).
    """
    p = pathlib.Path(path)
    if not p.exists():
        raise FileNotFoundError(f"defects ingest: no such file {str(p)!r}")
    if fmt == "auto":
        fmt = _READERS.get(p.suffix.lower(), "")
        if not fmt:
            raise ValueError(f"defects ingest: cannot tell the format of {p.name!r}; set 'format'")
    if fmt == "tiff":
        return _read_tiff(p)
    if fmt == "dm":
        from rsciio.digitalmicrograph import file_reader
    else:
        from rsciio.emd import file_reader
    signals = [s for s in file_reader(str(p)) if np.ndim(s["data"]) in (2, 3)]
    if not signals:
        raise ValueError(f"defects ingest: {p.name!r} holds no 2-D image or 3-D movie")
    return signals[0]


def _read_tiff(path: pathlib.Path) -> dict:
    """TIFF stack via tifffile; calibration from ImageJ metadata (unit, finterval) and the
    resolution tags (pixels per unit). Uncalibrated files give axes without units."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        data = tif.asarray()
        ij = tif.imagej_metadata or {}
        tags = tif.pages[0].tags
        res = tags.get("YResolution")
    axes = []
    if data.ndim == 3:
        axes.append(
            {
                "units": "s" if ij.get("finterval") else None,
                "scale": float(ij.get("finterval") or 1.0),
            }
        )
    unit = ij.get("unit")
    scale = 1.0
    if unit and res is not None:
        num, den = res.value
        scale = den / num if num else 1.0
    axes += [{"units": unit, "scale": scale}] * 2
    return {"data": data, "axes": axes}


def _calibration(axes: list[dict], table: dict) -> float | None:
    """Scale of the first axis whose units are in ``table``, converted (None if none)."""
    for ax in axes:
        unit = str(ax.get("units") or "").strip()
        if unit in table and float(ax.get("scale", 0)) > 0:
            return float(ax["scale"]) * table[unit]
    return None


def ingest_movie(inputs: list, opts: IngestOptions) -> xr.Dataset:
    """Stage ``ingest``: read ``opts.path`` into a ``defects.movie`` store (no ground truth).

    Raises
    ------
    ValueError
        Missing pixel size or frame time (neither in the file nor in the options), NaN pixels,
        or data that is not an image or a movie.
    """
    if inputs:
        raise ValueError("defects ingest takes no input stores")
    if not opts.path:
        raise ValueError("defects ingest: 'path' is required")
    sig = read_file(opts.path, opts.format)
    data = np.asarray(sig["data"], np.float32)
    if data.ndim == 2:
        data = data[None]
    if not np.isfinite(data).all():
        raise ValueError(f"defects ingest: {opts.path!r} contains NaN or infinite pixels")
    axes = list(sig.get("axes", []))
    space = axes[-2:] if len(axes) >= 2 else []
    pixel = opts.pixel_size or _calibration(space, _LENGTH_TO_A)
    if pixel is None:
        raise ValueError(
            f"defects ingest: {opts.path!r} has no length calibration on its image axes "
            f"(units {[a.get('units') for a in space]}); set 'pixel_size' [Å]"
        )
    frame_time = opts.frame_time or _calibration(axes[:-2], _TIME_TO_S)
    if frame_time is None:
        raise ValueError(
            f"defects ingest: {opts.path!r} has no frame-time calibration; set 'frame_time' [s]"
        )
    return movie_dataset(
        data,
        pixel_size=pixel,
        frame_time=frame_time,
        dose=opts.dose,
        electron_dose=opts.electron_dose,
        extra_attrs={"source_file": str(opts.path), "source_format": opts.format},
    )
