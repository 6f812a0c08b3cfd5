"""The correlative stages (see :class:`scopeflow.stage.Stage`).

A correlative sample names one polar4d and one fpxm sample that simulated (or measured) the same
specimen; ``compare`` reads their ``infer`` and ``analyze`` stores.
"""

from __future__ import annotations

from scopeflow.correlative.options import CompareOptions, FiguresOptions
from scopeflow.stage import Stage

__all__ = ["STAGES", "SAMPLE_KEYS"]

STAGES: dict[str, Stage] = {
    "compare": Stage(
        "scopeflow.correlative.compare:compare",
        CompareOptions,
        ("polar4d.pmap", "fpxm.analysis"),
        "store",
        "correlative.comparison",
        "polar4d and fpxm P maps on one grid: |P|, vector and direction agreement, blind spots",
    ),
    "figures": Stage(
        "scopeflow.correlative.plots:figures",
        FiguresOptions,
        ("correlative.comparison",),
        "figures",
        "correlative.figures",
        "side-by-side P maps, angle map, fpxm-vs-polar4d scatter",
    ),
}

#: Sample-level config keys besides the stage options (see scopeflow.schema).
SAMPLE_KEYS = {
    "polar4d": {
        "type": "string",
        "description": "the polar4d sample whose infer store is compared",
    },
    "fpxm": {"type": "string", "description": "the fpxm sample whose analyze store is compared"},
}
