"""Zarr store read/write, provenance and instrument-file ingest."""

from scopeflow.io.ingest import (
    FORMATS,
    IngestError,
    RawData,
    length_to_nm,
    read_instrument_file,
    resolve_calibration,
)
from scopeflow.io.provenance import fingerprint, git_commit, make_provenance
from scopeflow.io.store import (
    SCHEMA_VERSION,
    StoreError,
    finite_or_raise,
    has_ground_truth,
    read_store,
    store_kind,
    temp_sibling,
    truth_vars,
    write_store,
)

__all__ = [
    "FORMATS",
    "IngestError",
    "RawData",
    "SCHEMA_VERSION",
    "StoreError",
    "fingerprint",
    "finite_or_raise",
    "git_commit",
    "has_ground_truth",
    "length_to_nm",
    "make_provenance",
    "read_instrument_file",
    "read_store",
    "resolve_calibration",
    "store_kind",
    "temp_sibling",
    "truth_vars",
    "write_store",
]
