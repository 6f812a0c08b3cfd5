"""Shared helper of the techniques' ``figures`` stages (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["save_figure"]


def save_figure(fig, path: Path, dpi: int) -> Path:
    """Lay out, write as PNG at ``dpi`` and close ``fig`` (frees its memory); return ``path``."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
