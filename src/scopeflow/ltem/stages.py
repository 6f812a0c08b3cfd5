"""The ltem stages (see :mod:`scopeflow.stage` for the contract).

| stage       | options            | inputs             | output                     |
|-------------|--------------------|--------------------|----------------------------|
| simulate    | SimulateOptions    | ()                 | store ``ltem.series``      |
| ingest      | IngestOptions      | ()                 | store ``ltem.series``      |
| reconstruct | ReconstructOptions | ``ltem.series``    | store ``ltem.phase``       |
| analyze     | AnalyzeOptions     | ``ltem.phase``     | store ``ltem.analysis``    |
| figures     | FiguresOptions     | ``ltem.analysis``  | figures (PNG)              |

``reconstruct`` passes the series' ``true_*`` variables through, so ``analyze`` needs only the
reconstruction store.
"""

from __future__ import annotations

from scopeflow.ltem.options import (
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
        "scopeflow.ltem.simulate:simulate_series",
        SimulateOptions,
        (),
        "store",
        "ltem.series",
        "simulate a Lorentz-TEM through-focus series of a magnetic texture, with ground truth",
    ),
    "ingest": Stage(
        "scopeflow.ltem.ingest:ingest",
        IngestOptions,
        (),
        "store",
        "ltem.series",
        "read a through-focus series from TIFF/DM3/DM4/EMD with its calibrations",
    ),
    "reconstruct": Stage(
        "scopeflow.ltem.reconstruct:reconstruct",
        ReconstructOptions,
        ("ltem.series",),
        "store",
        "ltem.phase",
        "TIE baseline and AD phase retrieval with joint microscope-parameter refinement",
    ),
    "analyze": Stage(
        "scopeflow.ltem.analyze:analyze",
        AnalyzeOptions,
        ("ltem.phase",),
        "store",
        "ltem.analysis",
        "induction maps and metrics against ground truth",
    ),
    "figures": Stage(
        "scopeflow.ltem.plots:figures",
        FiguresOptions,
        ("ltem.analysis",),
        "figures",
        "ltem.figures",
        "phase, colour-wheel induction and AD/TIE/truth comparison figures",
    ),
}
