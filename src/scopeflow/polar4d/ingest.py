"""Stage ``ingest``: a real 4D-STEM file into the canonical ``polar4d.scan`` store.

Reads lazily through :func:`scopeflow.io.fourd.open_4dstem` (chunked by scan rows, a detector frame
never split); the CLI writes the store chunk by chunk, so files larger than memory stream through.
The detector pixel must be known in mrad (the network samples the pattern in mrad).
"""

from __future__ import annotations

import xarray as xr

from scopeflow.io.fourd import open_4dstem
from scopeflow.io.ingest import IngestError
from scopeflow.polar4d.options import IngestOptions

__all__ = ["ingest_scan"]


def ingest_scan(inputs: list, opts: IngestOptions) -> xr.Dataset:
    """Stage ``ingest``: ``data (scan_row, scan_col, k_row, k_col)`` [counts], dask-backed.

    Raises
    ------
    IngestError
        Missing file or calibration (naming the config key), or a detector calibrated in 1/Å
        only (set ``ingest.k_pixel_mrad``).
    """
    cal = {
        "beam_energy_eV": opts.beam_energy_eV,
        "scan_step_nm": opts.scan_step_nm,
        "k_pixel_mrad": opts.k_pixel_mrad,
        "convergence_mrad": opts.convergence_mrad,
    }
    ds = open_4dstem(
        opts.path,
        opts.format,
        dataset=opts.dataset or None,
        scan_shape=tuple(opts.scan_shape) or None,
        calibration={k: v for k, v in cal.items() if v is not None},
        chunk_rows=opts.chunk_rows or None,
    )
    if "k_pixel_mrad" not in ds.attrs:
        raise IngestError(
            f"{opts.path}: the detector is calibrated in 1/Å only; polar4d needs mrad: set "
            "ingest.calibration.k_pixel_mrad"
        )
    return ds
