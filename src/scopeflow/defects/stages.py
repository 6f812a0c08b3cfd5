"""The defects stages (see :class:`scopeflow.stage.Stage`)."""

from __future__ import annotations

from scopeflow.defects.options import (
    AnalyzeOptions,
    ClassifyOptions,
    DetectOptions,
    FiguresOptions,
    IngestOptions,
    KineticsOptions,
    SimulateOptions,
    TrackOptions,
    TrainOptions,
)
from scopeflow.stage import Stage

__all__ = ["STAGES"]

STAGES: dict[str, Stage] = {
    "simulate": Stage(
        "scopeflow.defects.simulate:simulate_movie",
        SimulateOptions,
        (),
        "store",
        "defects.movie",
        "Simulated HAADF movie of Mo-doped WS2 with defect kinetics and truth",
    ),
    "ingest": Stage(
        "scopeflow.defects.ingest:ingest_movie",
        IngestOptions,
        (),
        "store",
        "defects.movie",
        "Read a DM3/DM4/EMD/TIFF movie with its calibration",
    ),
    "train": Stage(
        "scopeflow.defects.train:train_model",
        TrainOptions,
        ("defects.movie",),
        "store",
        "defects.model",
        "Train the U-Net on frames simulated at the movie's calibration",
    ),
    "detect": Stage(
        "scopeflow.defects.detect:detect_movie",
        DetectOptions,
        ("defects.movie", "defects.model"),
        "store",
        "defects.detections",
        "Network and lattice-fit baseline detections",
    ),
    "classify": Stage(
        "scopeflow.defects.classify:classify_objects",
        ClassifyOptions,
        ("defects.detections", "defects.movie"),
        "store",
        "defects.classes",
        "GMM (BIC) classes of lattice-aligned symmetry-pooled crops",
    ),
    "track": Stage(
        "scopeflow.defects.track:track_objects",
        TrackOptions,
        ("defects.classes",),
        "store",
        "defects.tracks",
        "One-to-one linking with gap closing",
    ),
    "kinetics": Stage(
        "scopeflow.defects.kinetics:kinetics_stage",
        KineticsOptions,
        ("defects.tracks",),
        "store",
        "defects.kinetics",
        "S-vacancy D and complex transition matrix",
    ),
    "analyze": Stage(
        "scopeflow.defects.analyze:analyze_stage",
        AnalyzeOptions,
        (
            "defects.movie",
            "defects.detections",
            "defects.classes",
            "defects.tracks",
            "defects.kinetics",
        ),
        "store",
        "defects.analysis",
        "Metrics vs ground truth",
    ),
    "figures": Stage(
        "scopeflow.defects.plots:figures",
        FiguresOptions,
        ("defects.movie", "defects.detections", "defects.tracks", "defects.kinetics"),
        "figures",
        "defects.figures",
        "Detections, classes, tracks, MSD, transition matrices",
    ),
}
