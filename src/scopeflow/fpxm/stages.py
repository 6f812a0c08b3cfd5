"""The fpxm stages (Fourier-ptychographic dark-field X-ray microscopy)."""

from __future__ import annotations

from scopeflow.fpxm.options import (
    AnalyzeOptions,
    FiguresOptions,
    IngestOptions,
    ReconstructOptions,
    SimulateOptions,
)
from scopeflow.stage import Stage

__all__ = ["STAGES"]

STAGES: dict[str, Stage] = {
    "simulate": Stage(
        "scopeflow.fpxm.simulate:simulate",
        SimulateOptions,
        (),
        "store",
        "fpxm.stack",
        "simulate an FP-DFXM stack of a ferroelectric film with ground truth",
    ),
    "ingest": Stage(
        "scopeflow.fpxm.ingest:ingest",
        IngestOptions,
        (),
        "store",
        "fpxm.stack",
        "read a measured FP-DFXM stack (HDF5/NeXus or TIFF) with its calibrations",
    ),
    "reconstruct": Stage(
        "scopeflow.fpxm.reconstruct:reconstruct",
        ReconstructOptions,
        ("fpxm.stack",),
        "store",
        "fpxm.field",
        "Fourier-ptychographic recovery of the Bragg field, Zernike pupil and shifts",
    ),
    "analyze": Stage(
        "scopeflow.fpxm.analyze:analyze",
        AnalyzeOptions,
        ("fpxm.stack", "fpxm.field"),
        "store",
        "fpxm.analysis",
        "phase -> strain/tilt -> polarization (local LGD equilibrium), metrics",
    ),
    "figures": Stage(
        "scopeflow.fpxm.plots:figures",
        FiguresOptions,
        ("fpxm.field", "fpxm.analysis"),
        "figures",
        "fpxm.figures",
        "amplitude/phase, pupil, strain and polarization maps",
    ),
}
