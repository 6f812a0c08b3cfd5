"""The tomo4d stages (see :class:`scopeflow.stage.Stage`)."""

from __future__ import annotations

from scopeflow.stage import Stage
from scopeflow.tomo4d.options import (
    AnalyzeOptions,
    ExportOptions,
    FiguresOptions,
    IndexOptions,
    IngestOptions,
    ReduceOptions,
    SimulateOptions,
    TrackOptions,
)

__all__ = ["STAGES"]

STAGES: dict[str, Stage] = {
    "simulate": Stage(
        "scopeflow.tomo4d.simulate:simulate",
        SimulateOptions,
        (),
        "store",
        "tomo4d.series",
        "simulate a sparse 4D-STEM tilt series of agglomerated nanocrystals with ground truth",
    ),
    "ingest": Stage(
        "scopeflow.tomo4d.ingest:ingest",
        IngestOptions,
        (),
        "store",
        "tomo4d.series",
        "read a tilt series of 4D-STEM files (MIB, EMD/HDF5, DM4, EMPAD) into sparse counts",
    ),
    "track": Stage(
        "scopeflow.tomo4d.track:track",
        TrackOptions,
        ("tomo4d.series",),
        "store",
        "tomo4d.track",
        "virtual ADF images, OpenCV tracking with lagged references, masks of the target",
    ),
    "reduce": Stage(
        "scopeflow.tomo4d.reduce:reduce",
        ReduceOptions,
        ("tomo4d.series", "tomo4d.track"),
        "store",
        "tomo4d.frames",
        "sum the target's re-centred patterns per tilt (tracked, fixed box, whole field, oracle)",
    ),
    "index": Stage(
        "scopeflow.tomo4d.index:index",
        IndexOptions,
        ("tomo4d.frames",),
        "store",
        "tomo4d.index",
        "spot search, Ewald inversion, DPS indexing, cell and tilt-axis refinement, integration",
    ),
    "export": Stage(
        "scopeflow.tomo4d.export:export",
        ExportOptions,
        ("tomo4d.frames", "tomo4d.index"),
        "figures",
        "tomo4d.export",
        "PETS2 project (.pts2 + TIFF frames) and SHELX HKLF4 .hkl",
    ),
    "analyze": Stage(
        "scopeflow.tomo4d.analyze:analyze",
        AnalyzeOptions,
        ("tomo4d.series", "tomo4d.track", "tomo4d.index"),
        "store",
        "tomo4d.analysis",
        "cell and orientation vs the target's truth, mask purity/capture, baselines",
    ),
    "figures": Stage(
        "scopeflow.tomo4d.plots:figures",
        FiguresOptions,
        ("tomo4d.track", "tomo4d.frames", "tomo4d.index"),
        "figures",
        "tomo4d.figures",
        "virtual images with tracked masks, summed frame, reciprocal-space projections",
    ),
}
