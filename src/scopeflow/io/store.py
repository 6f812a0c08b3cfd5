"""Zarr (format 3) stores: the one way stages exchange data.

Contract (DESIGN.md §2):

- every store is an xarray Dataset written with ``zarr_format=3``, dask-chunked;
- ``attrs["scopeflow"] = {"kind": str, "schema_version": int}`` is checked by :func:`read_store`;
- ``attrs["provenance"]`` holds the scopeflow version, the git commit (when run from a checkout),
  the stage, the parameters and the inputs with content fingerprints (:mod:`.provenance`);
- simulated ground truth lives in variables prefixed ``true_`` and scalar truths in
  ``attrs["ground_truth"]`` (:func:`has_ground_truth`);
- writes are atomic: the store is written to a hidden temporary sibling and renamed into place,
  so a killed writer never leaves a store that looks complete.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import xarray as xr
from dask.diagnostics import ProgressBar
from zarr.storage import LocalStore

__all__ = [
    "SCHEMA_VERSION",
    "StoreError",
    "write_store",
    "read_store",
    "store_kind",
    "has_ground_truth",
    "truth_vars",
    "temp_sibling",
    "finite_or_raise",
]

#: Version of the store schema written by this scopeflow; bumped on incompatible changes.
SCHEMA_VERSION = 1
TRUTH_PREFIX = "true_"
_TMP_TAG = ".tmp-"

log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """A store is missing, unreadable, of the wrong kind or has unexpected dimensions."""


def temp_sibling(path: str | os.PathLike) -> Path:
    """The hidden temporary sibling a store is written to before it is renamed into place."""
    path = Path(path)
    return path.with_name(f".{path.name}{_TMP_TAG}{os.getpid()}")


def _remove_stale_temps(path: Path) -> None:
    for stale in path.parent.glob(f".{path.name}{_TMP_TAG}*"):
        shutil.rmtree(stale, ignore_errors=True)


def _plain_encoding(ds: xr.Dataset) -> xr.Dataset:
    """Drop encodings inherited from a store that was read (their chunks may not fit), and
    store text as variable-length strings (fixed-width unicode has no Zarr v3 specification)."""
    ds = ds.copy()
    for name in list(ds.variables):
        var = ds[name]
        if var.dtype.kind in "US":
            ds[name] = var.astype(str).astype(object)
        ds[name].encoding = {}
    return ds


def _check_attrs(ds: xr.Dataset, path: Path) -> None:
    for name, var in ds.variables.items():
        if name in ds.coords and var.ndim == 1 and "units" not in var.attrs:
            if var.dtype.kind in "fiu" and name in ds.dims:
                raise StoreError(
                    f"{path}: coordinate {name!r} has no 'units' attribute "
                    "(every numeric dimension coordinate must state its units)"
                )


class _Interrupted(Exception):
    pass


def _raise_interrupted(signum, frame):  # pragma: no cover - exercised via subprocess
    raise _Interrupted(f"signal {signum}")


def write_store(
    ds: xr.Dataset,
    path: str | os.PathLike,
    kind: str,
    *,
    provenance: Mapping | None = None,
    chunks: Mapping[str, int] | None = None,
) -> Path:
    """Write a dataset as a Zarr v3 store, atomically, with the scopeflow attrs.

    Parameters
    ----------
    ds : xarray.Dataset
        Data to write (numpy- or dask-backed). Numeric dimension coordinates need ``units``.
    path : path-like
        Final store path (``*.zarr``). An existing store there is replaced only after the new
        one is complete.
    kind : str
        Store kind, e.g. ``"ltem.series"``.
    provenance : mapping, optional
        Provenance record (see :func:`scopeflow.io.provenance.make_provenance`).
    chunks : mapping, optional
        Dask chunks per dimension to write with (default: the dataset's own chunking).

    Returns
    -------
    pathlib.Path
        The final path.

    Raises
    ------
    StoreError
        If a coordinate lacks units or the write fails (nothing is left at ``path`` then).
    """
    path = Path(path)
    _check_attrs(ds, path)
    ds = _plain_encoding(ds)
    if chunks:
        ds = ds.chunk({k: v for k, v in chunks.items() if k in ds.dims})
    ds.attrs = {
        **ds.attrs,
        "scopeflow": {"kind": kind, "schema_version": SCHEMA_VERSION},
        "provenance": dict(provenance or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    tmp = temp_sibling(path)
    old_handler = None
    if hasattr(signal, "SIGTERM"):
        try:
            old_handler = signal.signal(signal.SIGTERM, _raise_interrupted)
        except ValueError:  # not in the main thread
            old_handler = None
    try:
        # progress in the rule's log for writes that take a while (lazy stages compute here)
        with ProgressBar(minimum=5.0, out=sys.stderr):
            ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, _Interrupted):
            raise SystemExit(143) from None
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        raise StoreError(f"{path}: writing the store failed: {err}") from err
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)
    log.info("wrote %s store %s", kind, path)
    return path


def store_kind(path: str | os.PathLike) -> str | None:
    """The ``kind`` recorded in a store's attrs, or ``None`` if it has none."""
    meta = _open(Path(path)).attrs.get("scopeflow", {})
    return meta.get("kind") if isinstance(meta, dict) else None


class _VisibleOnlyStore(LocalStore):
    """Read-only local store that ignores hidden files (Snakemake drops a ``.snakemake_timestamp``
    into every ``directory()`` output, which zarr would otherwise reject as a foreign object)."""

    async def list_dir(self, prefix: str):
        async for name in super().list_dir(prefix):
            if not name.startswith("."):
                yield name


def _open(path: Path) -> xr.Dataset:
    if not path.exists():
        raise StoreError(f"{path}: store does not exist")
    if not (path / "zarr.json").is_file():
        raise StoreError(f"{path}: not a Zarr format-3 store (no zarr.json at its root)")
    try:
        store = _VisibleOnlyStore(path, read_only=True)
        return xr.open_zarr(store, zarr_format=3, consolidated=False, chunks={})
    except Exception as err:  # zarr/xarray raise many types for corrupt stores
        raise StoreError(f"{path}: cannot be read as a scopeflow store: {err}") from err


def read_store(
    path: str | os.PathLike,
    kind: str | Iterable[str] | None = None,
    *,
    dims: Mapping[str, tuple[str, ...]] | None = None,
) -> xr.Dataset:
    """Open a store lazily (dask) and check its kind, schema version and dimensions.

    Parameters
    ----------
    path : path-like
        The ``*.zarr`` store.
    kind : str or iterable of str, optional
        Expected kind(s); ``None`` accepts any scopeflow store.
    dims : mapping, optional
        ``{variable: expected dims}`` to check, e.g. ``{"image": ("defocus", "row", "col")}``.

    Returns
    -------
    xarray.Dataset
        Dask-backed; nothing is computed.

    Raises
    ------
    StoreError
        Naming the store, what was expected and what was found.
    """
    path = Path(path)
    ds = _open(path)
    meta = ds.attrs.get("scopeflow")
    if not isinstance(meta, dict) or "kind" not in meta:
        raise StoreError(f"{path}: not a scopeflow store (attrs['scopeflow'] missing)")
    found = meta["kind"]
    if kind is not None:
        expected = (kind,) if isinstance(kind, str) else tuple(kind)
        if found not in expected:
            want = repr(expected[0]) if len(expected) == 1 else f"one of {list(expected)}"
            raise StoreError(f"{path}: store kind is {found!r}, expected {want}")
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise StoreError(
            f"{path}: schema_version {version!r} is not supported (this scopeflow reads "
            f"{SCHEMA_VERSION}); rerun the stage that wrote it"
        )
    for name, want_dims in (dims or {}).items():
        if name not in ds.variables:
            raise StoreError(f"{path}: variable {name!r} missing (found {sorted(ds.data_vars)})")
        if tuple(ds[name].dims) != tuple(want_dims):
            raise StoreError(
                f"{path}: variable {name!r} has dims {tuple(ds[name].dims)}, "
                f"expected {tuple(want_dims)}"
            )
    return ds


def truth_vars(ds: xr.Dataset) -> list[str]:
    """Names of ground-truth variables (prefixed ``true_``)."""
    return [str(v) for v in ds.data_vars if str(v).startswith(TRUTH_PREFIX)]


def has_ground_truth(ds: xr.Dataset) -> bool:
    """True for simulated data carrying ground truth (variables ``true_*`` or attrs)."""
    return bool(truth_vars(ds)) or bool(ds.attrs.get("ground_truth"))


def finite_or_raise(arr, name: str, where: str) -> None:
    """Raise a clear error if ``arr`` has NaN or inf (computes it; use on small arrays)."""
    a = np.asarray(arr)
    bad = ~np.isfinite(a)
    if bad.any():
        idx = np.argwhere(bad)[0].tolist()
        raise StoreError(f"{where}: {name} has {int(bad.sum())} non-finite values (first at {idx})")
