"""The polar4d stages (see :class:`scopeflow.stage.Stage`)."""

from __future__ import annotations

from scopeflow.polar4d.options import (
    AnalyzeOptions,
    FiguresOptions,
    InferOptions,
    IngestOptions,
    SimulateOptions,
    TrainOptions,
    TrainSetOptions,
)
from scopeflow.stage import Stage

__all__ = ["STAGES"]

STAGES: dict[str, Stage] = {
    "trainset": Stage(
        "scopeflow.polar4d.simulate:simulate_trainset",
        TrainSetOptions,
        (),
        "store",
        "polar4d.trainset",
        "abTEM CBED patterns of randomly displaced perovskite cells (thickness series)",
    ),
    "simulate": Stage(
        "scopeflow.polar4d.simulate:simulate_scan",
        SimulateOptions,
        (),
        "store",
        "polar4d.scan",
        "4D-STEM scan of a film with polar nanodomains, with truth",
    ),
    "ingest": Stage(
        "scopeflow.polar4d.ingest:ingest_scan",
        IngestOptions,
        (),
        "store",
        "polar4d.scan",
        "Read a MIB/EMD/HDF5/DM4/EMPAD 4D-STEM file with calibrations",
    ),
    "train": Stage(
        "scopeflow.polar4d.train:train_model",
        TrainOptions,
        ("polar4d.trainset",),
        "store",
        "polar4d.model",
        "Two-branch CNN with uncertainty + PCA/ridge and COM baselines",
    ),
    "infer": Stage(
        "scopeflow.polar4d.infer:infer_scan",
        InferOptions,
        ("polar4d.scan", "polar4d.model"),
        "store",
        "polar4d.pmap",
        "Streamed displacement / polarization maps with uncertainty and baselines",
    ),
    "analyze": Stage(
        "scopeflow.polar4d.analyze:analyze_stage",
        AnalyzeOptions,
        ("polar4d.scan", "polar4d.pmap", "polar4d.model"),
        "store",
        "polar4d.analysis",
        "Metrics vs truth and baselines, <111> rotation, topological density",
    ),
    "figures": Stage(
        "scopeflow.polar4d.plots:figures",
        FiguresOptions,
        ("polar4d.pmap", "polar4d.analysis", "polar4d.model"),
        "figures",
        "polar4d.figures",
        "P maps, vector field, errors, loss",
    ),
}

#: Sample-level config keys besides the stage options (see scopeflow.schema).
SAMPLE_KEYS = {
    "model": {
        "type": "string",
        "description": "path of a polar4d.model store (e.g. the committed "
        "resources/polar4d/model_static.zarr) used instead of this sample's own trainset/train",
    }
}
