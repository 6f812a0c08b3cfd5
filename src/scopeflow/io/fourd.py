"""Lazy readers for 4D-STEM data sets (scan positions x detector frames).

Every reader returns the same canonical :class:`xarray.Dataset`: variable ``data`` with dims
``(scan_row, scan_col, k_row, k_col)``, dask-backed, chunked along ``scan_row`` only (a detector
frame is never split), so a stage's memory is bounded by ``chunk_rows`` and not by the data set.
Opening a file computes nothing.

Formats
-------
``"mib"``
    Quantum Detectors Merlin, through rosettasciio's lazy memory-mapped reader.
``"emd"`` / ``"hdf5"``
    h5py + :func:`dask.array.from_array`: py4DSTEM's EMD 1.0 datacube layout (a group with
    ``emd_group_type == 1`` holding ``data`` and ``dim1..dim4`` vectors), its older
    ``4DSTEM_experiment/data/datacubes`` layout, or any named 4-D dataset (``dataset=``).
``"dm4"``
    Gatan DigitalMicrograph through rosettasciio (lazy).
``"empad"``
    EMPAD raw files: little-endian float32 frames of 128 x 130 pixels (two trailing metadata
    rows dropped), memory-mapped.

Calibrations (attrs of the returned Dataset): ``beam_energy_eV``, ``scan_step_nm``,
``k_pixel_mrad`` or ``k_pixel_inv_A``, ``convergence_mrad`` when known. Values in ``calibration``
override the file's; a missing required one raises :class:`~scopeflow.io.ingest.IngestError`
naming the config key ``ingest.calibration.<name>``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr

from scopeflow.io.ingest import IngestError, length_to_nm, resolve_calibration

__all__ = ["FOURD_FORMATS", "open_4dstem", "EMPAD_FRAME", "write_mib"]

log = logging.getLogger(__name__)

#: Formats understood by :func:`open_4dstem`.
FOURD_FORMATS = ("mib", "emd", "hdf5", "dm4", "empad")
#: EMPAD raw frame as stored (rows incl. 2 metadata rows, cols).
EMPAD_FRAME = (130, 128)
#: Target bytes per dask chunk when ``chunk_rows`` is not given.
_CHUNK_BYTES = 64 * 2**20
_CAL_KEYS = ("beam_energy_eV", "scan_step_nm", "k_pixel_mrad", "k_pixel_inv_A", "convergence_mrad")
_WHERE = "ingest.calibration"


def _angle_mrad(value: float, units: str | None) -> float | None:
    f = {"mrad": 1.0, "rad": 1e3, "µrad": 1e-3, "urad": 1e-3}.get((units or "").strip().lower())
    return None if f is None else float(value) * f


def _recip_inv_a(value: float, units: str | None) -> float | None:
    key = (units or "").strip().lower().replace(" ", "")
    factor = {"1/å": 1.0, "1/a": 1.0, "a^-1": 1.0, "å^-1": 1.0, "1/nm": 0.1, "nm^-1": 0.1}
    f = factor.get(key)
    return None if f is None else float(value) * f


def _k_calibration(scale: float, units: str | None) -> dict:
    """Detector pixel calibration from an axis ``scale`` in ``units`` (mrad or 1/length)."""
    mrad = _angle_mrad(scale, units)
    if mrad is not None:
        return {"k_pixel_mrad": mrad}
    inv_a = _recip_inv_a(scale, units)
    return {} if inv_a is None else {"k_pixel_inv_A": inv_a}


def _from_attrs(attrs: Mapping) -> dict:
    """Canonical calibrations stored as plain attributes (scopeflow's own HDF5 writers)."""
    out = {k: float(attrs[k]) for k in _CAL_KEYS if k in attrs}
    for alias, scale in (("energy_ev", 1.0), ("beam_energy_keV", 1e3)):
        if alias in attrs and "beam_energy_eV" not in out:
            out["beam_energy_eV"] = float(attrs[alias]) * scale
    return out


# --------------------------------------------------------------------------- HDF5 / EMD


def _h5_plain(v):
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, np.ndarray) and v.size == 1:
        return v.item()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _find_datacube(f) -> str | None:
    """Path of the first py4DSTEM datacube (EMD 1.0 group or legacy layout) in an open file."""
    import h5py

    hits: list[str] = []

    def visit(name, obj):
        if not isinstance(obj, h5py.Group) or "data" not in obj:
            return
        if obj["data"].ndim != 4:
            return
        if _h5_plain(obj.attrs.get("emd_group_type", -1)) == 1 or "datacube" in name.lower():
            hits.append(f"{name}/data")

    f.visititems(visit)
    return hits[0] if hits else None


def _h5_dims_calibration(group) -> dict:
    """Calibrations from EMD ``dim1..dim4`` vectors (scan dims 1-2, detector dims 3-4)."""
    out: dict = {}
    for i, kind in ((1, "scan"), (3, "k")):
        name = f"dim{i}"
        if name not in group:
            continue
        vec = np.asarray(group[name][()], dtype=float)
        if vec.size < 2:
            continue
        step = float(vec[1] - vec[0])
        units = _h5_plain(group[name].attrs.get("units", None))
        if kind == "scan":
            nm = length_to_nm(step, units)
            if nm is not None:
                out["scan_step_nm"] = nm
        else:
            out.update(_k_calibration(step, units))
    return out


def _py4dstem_calibration(f) -> dict:
    """Calibrations from py4DSTEM metadata groups (``R_pixel_size``/``Q_pixel_size`` + units)."""
    import h5py

    found: dict = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Group | h5py.Dataset):
            for k, v in obj.attrs.items():
                found.setdefault(k, _h5_plain(v))
            if isinstance(obj, h5py.Dataset) and obj.ndim == 0:
                found.setdefault(name.rsplit("/", 1)[-1], _h5_plain(obj[()]))

    f.visititems(visit)
    out: dict = {}
    if "R_pixel_size" in found:
        nm = length_to_nm(found["R_pixel_size"], found.get("R_pixel_units", "nm"))
        if nm is not None:
            out["scan_step_nm"] = nm
    if "Q_pixel_size" in found:
        out.update(_k_calibration(found["Q_pixel_size"], found.get("Q_pixel_units")))
    if "beam_energy" in found:  # py4DSTEM stores eV
        out["beam_energy_eV"] = float(found["beam_energy"])
    if "convergence_semiangle_mrad" in found:
        out["convergence_mrad"] = float(found["convergence_semiangle_mrad"])
    return out


def _open_hdf5(path: Path, dataset: str | None):
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise IngestError(f"{path}: cannot be opened as HDF5: {err}") from err
    name = dataset or _find_datacube(f)
    if name is None:
        names: list[str] = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        f.close()
        raise IngestError(
            f"{path}: no py4DSTEM datacube found; say which HDF5 dataset holds the 4-D data "
            f"(ingest.dataset); datasets in the file: {names[:20]}"
        )
    if name not in f:
        f.close()
        raise IngestError(f"{path}: HDF5 dataset {name!r} not found (ingest.dataset)")
    dset = f[name]
    cal = {**_py4dstem_calibration(f), **_h5_dims_calibration(dset.parent)}
    cal.update(_from_attrs({k: _h5_plain(v) for k, v in dset.parent.attrs.items()}))
    cal.update(_from_attrs({k: _h5_plain(v) for k, v in dset.attrs.items()}))
    # the h5py file stays open for as long as the dask graph references the dataset
    return dset, cal


# --------------------------------------------------------------------------- rosettasciio


def _open_rsciio(path: Path, fmt: str, scan_shape):
    if fmt == "mib":
        from rsciio.quantumdetector import file_reader

        kwargs = {} if scan_shape is None else {"navigation_shape": tuple(scan_shape)[::-1]}
    else:
        from rsciio.digitalmicrograph import file_reader

        kwargs = {}
    try:
        signals = file_reader(str(path), lazy=True, **kwargs)
    except Exception as err:  # readers raise many types on bad files
        raise IngestError(f"{path}: cannot be read as {fmt}: {err}") from err
    sig = next((s for s in signals if np.ndim(s["data"]) == 4), None)
    if sig is None:
        shapes = [tuple(s["data"].shape) for s in signals]
        raise IngestError(
            f"{path}: no 4-D signal in the {fmt} file (shapes {shapes}); give the scan shape "
            "(ingest.scan_shape) for a flat frame series"
        )
    cal: dict = {}
    axes = sig.get("axes", [])
    nav = [a for a in axes if a.get("navigate", False)]
    sig_axes = [a for a in axes if not a.get("navigate", False)]
    if nav:
        nm = length_to_nm(nav[-1].get("scale", 1.0), nav[-1].get("units"))
        if nm is not None:
            cal["scan_step_nm"] = nm
    if sig_axes:
        cal.update(_k_calibration(sig_axes[-1].get("scale", 1.0), sig_axes[-1].get("units")))
    tem = (sig.get("metadata", {}) or {}).get("Acquisition_instrument", {}).get("TEM", {})
    if "beam_energy" in tem:  # keV in HyperSpy's convention
        cal["beam_energy_eV"] = float(tem["beam_energy"]) * 1e3
    if "convergence_angle" in tem:
        cal["convergence_mrad"] = float(tem["convergence_angle"])
    return sig["data"], cal


# --------------------------------------------------------------------------- EMPAD


def _open_empad(path: Path, scan_shape):
    if scan_shape is None:
        raise IngestError(f"{path}: raw EMPAD files need the scan shape: set ingest.scan_shape")
    rows, cols = (int(s) for s in scan_shape)
    frame_bytes = 4 * EMPAD_FRAME[0] * EMPAD_FRAME[1]
    size = path.stat().st_size
    if size != rows * cols * frame_bytes:
        raise IngestError(
            f"{path}: {size} bytes is not {rows}x{cols} EMPAD frames of 128x130 float32 "
            f"({rows * cols * frame_bytes} bytes); check ingest.scan_shape"
        )
    mm = np.memmap(path, dtype="<f4", mode="r", shape=(rows, cols, *EMPAD_FRAME))
    return mm, {}


# --------------------------------------------------------------------------- public


def _default_chunk_rows(shape, itemsize: int) -> int:
    row_bytes = int(np.prod(shape[1:])) * itemsize
    return int(max(1, min(shape[0], _CHUNK_BYTES // max(row_bytes, 1))))


def open_4dstem(
    path,
    fmt: str,
    *,
    dataset: str | None = None,
    scan_shape=None,
    calibration: Mapping | None = None,
    chunk_rows: int | None = None,
) -> xr.Dataset:
    """Open a 4D-STEM file lazily as the canonical ``(scan_row, scan_col, k_row, k_col)`` Dataset.

    Parameters
    ----------
    path : path-like
        The file (for MIB the ``.mib``; a ``.hdr`` beside it is used when present).
    fmt : {"mib", "emd", "hdf5", "dm4", "empad"}
        Its format (config ``ingest.format``).
    dataset : str, optional
        HDF5 path of the 4-D dataset; found automatically for py4DSTEM files.
    scan_shape : (int, int), optional
        ``(scan_rows, scan_cols)``: required for EMPAD raw files, used to reshape MIB frame series.
    calibration : mapping, optional
        Overrides for ``beam_energy_eV``, ``scan_step_nm``, ``k_pixel_mrad``/``k_pixel_inv_A``,
        ``convergence_mrad`` (a non-``None`` value wins over the file's).
    chunk_rows : int, optional
        Scan rows per dask chunk; default keeps a chunk near 64 MiB.

    Returns
    -------
    xarray.Dataset
        ``data : (scan_row, scan_col, k_row, k_col)`` dask array [counts], coordinates in nm and
        mrad (or 1/Å), calibrations as attrs.

    Raises
    ------
    IngestError
        Unknown format, missing file, data that is not 4-D, or a missing required calibration
        (``beam_energy_eV``, ``scan_step_nm`` and a detector pixel size).
    """
    path = Path(path)
    if fmt not in FOURD_FORMATS:
        raise IngestError(f"{path}: unknown 4D-STEM format {fmt!r}; known: {list(FOURD_FORMATS)}")
    if not path.exists():
        raise IngestError(f"{path}: file does not exist")
    if fmt in ("emd", "hdf5"):
        raw, found = _open_hdf5(path, dataset)
    elif fmt in ("mib", "dm4"):
        raw, found = _open_rsciio(path, fmt, scan_shape)
    else:
        raw, found = _open_empad(path, scan_shape)
    source = f"{path} ({fmt})"
    shape = tuple(raw.shape)
    if len(shape) == 3 and scan_shape is not None and fmt != "empad":
        shape = (int(scan_shape[0]), int(scan_shape[1]), *shape[1:])
    if len(shape) != 4:
        raise IngestError(
            f"{source}: expected 4-D data (scan_row, scan_col, k_row, k_col), got shape {shape}"
        )
    itemsize = np.dtype(raw.dtype).itemsize
    rows = int(chunk_rows) if chunk_rows else _default_chunk_rows(shape, itemsize)
    if rows < 1:
        raise IngestError(f"{source}: chunk_rows must be >= 1, got {chunk_rows}")
    if isinstance(raw, da.Array):
        arr = raw.reshape(shape) if tuple(raw.shape) != shape else raw
        arr = arr.rechunk((rows, -1, -1, -1))
    else:
        arr = da.from_array(raw, chunks=(rows, -1, -1, -1), lock=fmt in ("emd", "hdf5"))
    if fmt == "empad":
        arr = arr[:, :, : EMPAD_FRAME[1], :]  # drop the two metadata rows of each frame
    overrides = dict(calibration or {})
    unknown = sorted(set(overrides) - set(_CAL_KEYS))
    if unknown:
        raise IngestError(f"{source}: unknown calibration keys {unknown}; known: {list(_CAL_KEYS)}")
    cal = resolve_calibration(
        found, overrides, ("beam_energy_eV", "scan_step_nm"), source=source, config_where=_WHERE
    )
    if cal.get("k_pixel_mrad") is None and cal.get("k_pixel_inv_A") is None:
        raise IngestError(
            f"{source}: detector pixel size not found in the file and not set in the config; "
            f"scopeflow does not guess calibrations: set {_WHERE}.k_pixel_mrad "
            f"(or {_WHERE}.k_pixel_inv_A)"
        )
    return _as_dataset(arr, cal, source)


def _as_dataset(arr: da.Array, cal: dict, source: str) -> xr.Dataset:
    nr, nc, kr, kc = arr.shape
    step = float(cal["scan_step_nm"])
    if cal.get("k_pixel_mrad") is not None:
        kpix, kunits = float(cal["k_pixel_mrad"]), "mrad"
    else:
        kpix, kunits = float(cal["k_pixel_inv_A"]), "1/Å"
    coords = {
        "scan_row": ("scan_row", np.arange(nr) * step, {"units": "nm"}),
        "scan_col": ("scan_col", np.arange(nc) * step, {"units": "nm"}),
        "k_row": ("k_row", (np.arange(kr) - kr // 2) * kpix, {"units": kunits}),
        "k_col": ("k_col", (np.arange(kc) - kc // 2) * kpix, {"units": kunits}),
    }
    attrs = {k: float(v) for k, v in cal.items() if k in _CAL_KEYS and v is not None}
    attrs["source"] = source
    data = xr.DataArray(
        arr, dims=("scan_row", "scan_col", "k_row", "k_col"), attrs={"units": "counts"}
    )
    return xr.Dataset({"data": data}, coords=coords, attrs=attrs)


def write_mib(path, cube: np.ndarray) -> None:
    """Write a 4-D array as a single-chip Merlin MIB file (U16 frames, 384-byte headers).

    For tests and for handing simulated data to MIB-only tools. Header fields follow the Quantum
    Detectors MIB format: ``MQ1``, frame number, header size, chip count, width, height, pixel
    type, chip geometry, threshold count, timestamp, exposure [ns], padding. Frames are stored
    with their detector rows reversed, as rosettasciio's reader flips them back.

    Parameters
    ----------
    path : path-like
    cube : (scan_row, scan_col, k_row, k_col) array
        Counts (rounded and clipped to 0..65535).
    """
    rows, cols, kr, kc = cube.shape
    frames = np.clip(np.rint(cube), 0, 65535).reshape(rows * cols, kr, kc)
    with open(path, "wb") as f:
        for i, frame in enumerate(frames, start=1):
            fields = [
                "MQ1", f"{i:06d}", "00384", "01", f"{kc:04d}", f"{kr:04d}", "U16", "   1x1",
                "01", "2026-01-01T00:00:00.000000000Z", "1000000ns", "0", "0",
            ]  # fmt: skip
            f.write(",".join(fields).encode().ljust(384, b" "))
            f.write(frame[::-1].astype(">u2").tobytes())
