"""Options of the correlative stages (frozen dataclasses mirroring the config schema)."""

from __future__ import annotations

from dataclasses import dataclass

from scopeflow.options import opt

__all__ = ["CompareOptions", "FiguresOptions"]


@dataclass(frozen=True)
class CompareOptions:
    """Resample both polarization maps to a common grid and score their agreement."""

    specimen: str = opt(
        "",
        "Shared specimen both samples simulated (resources/specimens/<name>.yaml or a path) for "
        "the film and lamella thicknesses ('' = unknown, e.g. real data)",
    )
    grid_step_nm: float | None = opt(
        None,
        "Common grid step (null: the coarser technique's own sampling points)",
        units="nm",
        exclusive_minimum=0,
    )
    min_magnitude: float = opt(
        5.0, "Points where both |P| reach this score the direction", units="µC/cm²", minimum=0
    )
    direction_tolerance_deg: float = opt(
        30.0, "Angle under which two P vectors agree", units="deg", exclusive_minimum=0,
        maximum=90,
    )  # fmt: skip


@dataclass(frozen=True)
class FiguresOptions:
    """Side-by-side maps and scatter plots of the two polarization maps."""

    dpi: int = opt(110, "Figure resolution", minimum=50, maximum=600)
