"""Stage ``ingest``: a real 4D-STEM file into the canonical ``polar4d.scan`` store.

Reads lazily through :func:`scopeflow.io.fourd.open_4dstem` (chunked by scan rows, a detector frame
never split); the CLI writes the store chunk by chunk, so files larger than memory stream through.
The detector pixel must be known in mrad (the network samples the pattern in mrad).
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from scopeflow.io.fourd import open_4dstem
from scopeflow.io.ingest import IngestError
from scopeflow.polar4d.options import IngestOptions

__all__ = ["ingest_scan", "find_beam_center"]

log = logging.getLogger(__name__)


def find_beam_center(mean_pattern: np.ndarray) -> tuple[float, float]:
    """Zero-angle pixel of a mean diffraction pattern from its inversion symmetry.

    A diffraction pattern is, to a good approximation (Friedel's law; exact kinematically, and
    the disk positions stay symmetric under dynamical scattering), symmetric under inversion
    through zero angle: ``I(c + q) = I(c - q)``. The pattern registered on its own 180° rotation
    (phase correlation, 1/50 px upsampling; :func:`skimage.registration.phase_cross_correlation`,
    Guizar-Sicairos et al., Opt. Lett. 33, 156 (2008), doi:10.1364/OL.33.000156) is shifted by
    ``2 c - (k - 1)``. The whole pattern (disk edges out to the high-angle ring) fixes the centre,
    not the central disk alone, whose intensity the in-plane momentum transfer redistributes.

    Parameters
    ----------
    mean_pattern : (k_row, k_col) float
        Mean diffraction pattern [counts].

    Returns
    -------
    (row, col) : tuple of float [px]
    """
    from skimage.registration import phase_cross_correlation

    p = np.sqrt(np.clip(np.asarray(mean_pattern, np.float64), 0, None))  # tame the direct beam
    if not np.isfinite(p).all() or p.max() <= 0:
        raise ValueError("polar4d ingest: the mean pattern is empty or not finite")
    shift, _, _ = phase_cross_correlation(
        p, p[::-1, ::-1], upsample_factor=50, normalization="phase"
    )
    center = (np.array(p.shape) - 1) / 2 + shift / 2
    return float(center[0]), float(center[1])


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
            "ingest.k_pixel_mrad"
        )
    if len(opts.beam_center_px) not in (0, 2):
        raise IngestError(f"ingest.beam_center_px: expected (row, col), got {opts.beam_center_px}")
    if opts.beam_center_px:
        center = tuple(float(v) for v in opts.beam_center_px)
        log.info("beam centre (row, col) = %s px from the config", center)
    else:
        # one streamed pass over the file (chunk by chunk, bounded memory)
        mean = ds["data"].mean(("scan_row", "scan_col")).values
        center = find_beam_center(mean)
        log.info("beam centre (row, col) = (%.2f, %.2f) px found from the central disk", *center)
    ds.attrs["beam_center_px"] = list(center)
    return ds
