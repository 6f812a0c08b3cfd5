"""Instrument-file readers shared by every technique's ``ingest`` stage.

Reads an image stack / 4D data set and its calibrations from

- DM3/DM4 (Gatan), EMD (Velox and Berkeley), MIB (Quantum Detectors) through rosettasciio,
- TIFF stacks through rosettasciio's TIFF reader (which understands ImageJ, FEI, Zeiss, ...
  calibration tags) with a tifffile fallback,
- HDF5/NeXus files through h5py (a named dataset, calibrations from its attributes),

and resolves calibrations: values found in the file, overridden by the config, and a clear error
(never a silent guess) when a required one is in neither.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "IngestError",
    "RawData",
    "FORMATS",
    "read_instrument_file",
    "resolve_calibration",
    "length_to_nm",
]

log = logging.getLogger(__name__)

#: Formats understood by :func:`read_instrument_file` (config value -> reader).
FORMATS = ("tiff", "dm3", "dm4", "emd", "mib", "hdf5")

_LENGTH_NM = {
    "pm": 1e-3,
    "å": 0.1,
    "a": 0.1,
    "angstrom": 0.1,
    "nm": 1.0,
    "µm": 1e3,
    "um": 1e3,
    "micron": 1e3,
    "mm": 1e6,
    "m": 1e9,
}


class IngestError(ValueError):
    """An instrument file cannot be read or lacks a required calibration."""


@dataclass
class RawData:
    """What an instrument file holds.

    Attributes
    ----------
    data : numpy.ndarray or dask.array.Array
        The array as stored (navigation axes first, signal axes last).
    axes : list of dict
        One per array axis: ``name``, ``size``, ``scale``, ``offset``, ``units``, ``navigate``.
    metadata : dict
        Calibrations found in the file under canonical names where known
        (``pixel_size_nm``, ``energy_ev``, ``defocus_nm``, ``frame_time_s``, ...) plus ``raw`` with
        the reader's own metadata tree.
    source : str
        ``"<path> (<format>)"`` for messages.
    """

    data: object
    axes: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    source: str = ""


def length_to_nm(value: float, units: str | None) -> float | None:
    """Convert a length in ``units`` to nm; ``None`` if the units are not a known length."""
    if units is None:
        return None
    key = str(units).strip().lower().replace("angstroms", "angstrom")
    factor = _LENGTH_NM.get(key)
    return None if factor is None else float(value) * factor


def _rsciio_reader(fmt: str):
    if fmt in ("dm3", "dm4"):
        from rsciio.digitalmicrograph import file_reader
    elif fmt == "emd":
        from rsciio.emd import file_reader
    elif fmt == "mib":
        from rsciio.quantumdetector import file_reader
    elif fmt == "tiff":
        from rsciio.tiff import file_reader
    else:  # pragma: no cover - guarded by FORMATS
        raise IngestError(f"no rosettasciio reader for format {fmt!r}")
    return file_reader


def _canonical_from_rsciio(signal: Mapping) -> dict:
    md = signal.get("metadata", {}) or {}
    out: dict = {}
    tem = md.get("Acquisition_instrument", {}).get("TEM", {})
    if "beam_energy" in tem:  # keV in HyperSpy's metadata convention
        out["energy_ev"] = float(tem["beam_energy"]) * 1e3
    if "defocus" in tem:
        out["defocus_nm"] = tem["defocus"]
    if "convergence_angle" in tem:
        out["convergence_mrad"] = float(tem["convergence_angle"])
    sig_axes = [a for a in signal.get("axes", []) if not a.get("navigate", False)]
    if len(sig_axes) >= 2:
        sizes = [length_to_nm(a.get("scale", 1.0), a.get("units")) for a in sig_axes[-2:]]
        if all(s is not None for s in sizes):
            out["pixel_size_nm"] = sizes[0]
            if not np.isclose(sizes[0], sizes[1], rtol=1e-3):
                out["pixel_size_nm_col"] = sizes[1]
    nav = [a for a in signal.get("axes", []) if a.get("navigate", False)]
    for a in nav:
        if str(a.get("units", "")).lower() in ("s", "sec", "seconds"):
            out["frame_time_s"] = float(a.get("scale", 0.0)) or None
    out["raw"] = {"metadata": md}
    return out


def _read_hdf5(path: Path, dataset: str | None) -> RawData:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise IngestError(f"{path}: cannot be opened as HDF5: {err}") from err
    with f:
        if not dataset:
            names: list[str] = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            raise IngestError(
                f"{path}: say which HDF5 dataset holds the data (ingest 'dataset'); "
                f"datasets in the file: {names[:20]}"
            )
        if dataset not in f:
            raise IngestError(f"{path}: HDF5 dataset {dataset!r} not found")
        dset = f[dataset]
        data = dset[()]
        attrs = {k: _plain(v) for k, v in dset.attrs.items()}
        parent = {k: _plain(v) for k, v in dset.parent.attrs.items()}
    meta = {**parent, **attrs}
    axes = [
        {"name": f"axis{i}", "size": n, "scale": 1.0, "offset": 0.0, "units": None}
        for i, n in enumerate(data.shape)
    ]
    return RawData(data, axes, {**meta, "raw": {"attrs": meta}}, f"{path} (hdf5:{dataset})")


def _plain(v):
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_instrument_file(
    path: str | Path, fmt: str, *, dataset: str | None = None, signal_index: int = 0
) -> RawData:
    """Read an instrument file into a :class:`RawData`.

    Parameters
    ----------
    path : path-like
        The file.
    fmt : {"tiff", "dm3", "dm4", "emd", "mib", "hdf5"}
        Its format (the config's ``ingest.format``).
    dataset : str, optional
        HDF5 dataset path (``fmt == "hdf5"`` only).
    signal_index : int
        Which signal of a multi-signal file (EMD) to take.

    Raises
    ------
    IngestError
        Unknown format, missing/unreadable file, or an empty file.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise IngestError(f"{path}: unknown format {fmt!r}; known formats are {list(FORMATS)}")
    if not path.exists():
        raise IngestError(f"{path}: file does not exist")
    if fmt == "hdf5":
        return _read_hdf5(path, dataset)
    reader = _rsciio_reader(fmt)
    try:
        signals = reader(str(path), lazy=False)
    except Exception as err:  # readers raise many types on bad files
        raise IngestError(f"{path}: cannot be read as {fmt}: {err}") from err
    if not signals:
        raise IngestError(f"{path}: the {fmt} file holds no data")
    if signal_index >= len(signals):
        raise IngestError(f"{path}: signal {signal_index} requested, file has {len(signals)}")
    sig = signals[signal_index]
    axes = [
        {
            "name": a.get("name", f"axis{i}"),
            "size": a.get("size"),
            "scale": a.get("scale", 1.0),
            "offset": a.get("offset", 0.0),
            "units": a.get("units"),
            "navigate": a.get("navigate", False),
        }
        for i, a in enumerate(sig.get("axes", []))
    ]
    return RawData(sig["data"], axes, _canonical_from_rsciio(sig), f"{path} ({fmt})")


def resolve_calibration(
    found: Mapping,
    overrides: Mapping,
    required: Sequence[str],
    *,
    source: str,
    config_where: str = "ingest.calibration",
) -> dict:
    """Merge calibrations from the file with config overrides; refuse to guess missing ones.

    Parameters
    ----------
    found : mapping
        Calibrations read from the file (canonical names).
    overrides : mapping
        Values from the config; a non-``None`` value wins over the file (logged when different).
    required : sequence of str
        Names that must be known, e.g. ``("pixel_size_nm", "energy_ev")``.
    source : str
        The file, for messages.
    config_where : str
        Where in the config an override would go, for messages.

    Returns
    -------
    dict
        ``{name: value}`` for every name in ``found`` or ``overrides`` (raw trees dropped).

    Raises
    ------
    IngestError
        Naming every missing calibration, the file and the config key that would supply it.
    """
    out = {k: v for k, v in found.items() if k != "raw" and v is not None}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in out and out[key] != value:
            log.warning(
                "%s: %s=%r from the file overridden by config %r", source, key, out[key], value
            )
        out[key] = value
    missing = [k for k in required if out.get(k) is None]
    if missing:
        hints = ", ".join(f"{config_where}.{k}" for k in missing)
        raise IngestError(
            f"{source}: calibration {missing} not found in the file's metadata and not set in "
            f"the config; scopeflow does not guess calibrations: set {hints}"
        )
    return out
