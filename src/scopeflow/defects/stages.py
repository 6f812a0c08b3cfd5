"""The defects stages (see :class:`scopeflow.stage.Stage`)."""

from __future__ import annotations

from scopeflow.defects.analyze import analyze_stage
from scopeflow.defects.classify import classify_objects
from scopeflow.defects.detect import detect_movie
from scopeflow.defects.ingest import ingest_movie
from scopeflow.defects.kinetics import kinetics_stage
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
from scopeflow.defects.plots import figures
from scopeflow.defects.simulate import simulate_movie
from scopeflow.defects.track import track_objects
from scopeflow.defects.train import train_model
from scopeflow.stage import Stage

__all__ = ["STAGES"]

STAGES: dict[str, Stage] = {
    "simulate": Stage(
        simulate_movie,
        SimulateOptions,
        (),
        "store",
        "defects.movie",
        "Simulated HAADF movie of Mo-doped WS2 with defect kinetics and truth",
    ),
    "ingest": Stage(
        ingest_movie,
        IngestOptions,
        (),
        "store",
        "defects.movie",
        "Read a DM3/DM4/EMD/TIFF movie with its calibration",
    ),
    "train": Stage(
        train_model,
        TrainOptions,
        ("defects.movie",),
        "store",
        "defects.model",
        "Train the U-Net on frames simulated at the movie's calibration",
    ),
    "detect": Stage(
        detect_movie,
        DetectOptions,
        ("defects.movie", "defects.model"),
        "store",
        "defects.detections",
        "Network and lattice-fit baseline detections",
    ),
    "classify": Stage(
        classify_objects,
        ClassifyOptions,
        ("defects.detections", "defects.movie"),
        "store",
        "defects.classes",
        "GMM (BIC) classes of lattice-aligned symmetry-pooled crops",
    ),
    "track": Stage(
        track_objects,
        TrackOptions,
        ("defects.classes",),
        "store",
        "defects.tracks",
        "One-to-one linking with gap closing",
    ),
    "kinetics": Stage(
        kinetics_stage,
        KineticsOptions,
        ("defects.tracks",),
        "store",
        "defects.kinetics",
        "S-vacancy D and complex transition matrix",
    ),
    "analyze": Stage(
        analyze_stage,
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
        figures,
        FiguresOptions,
        ("defects.movie", "defects.detections", "defects.tracks", "defects.kinetics"),
        "figures",
        "defects.figures",
        "Detections, classes, tracks, MSD, transition matrices",
    ),
}
