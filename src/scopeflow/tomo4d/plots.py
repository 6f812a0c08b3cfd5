"""Figures of tomo4d (the ``figures`` stage): tracked masks, a summed frame, reciprocal space."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scopeflow.figures import save_figure  # noqa: E402
from scopeflow.tomo4d.options import FiguresOptions  # noqa: E402

__all__ = ["figures"]


def figures(inputs: list, opts: FiguresOptions, outdir: Path) -> list[Path]:
    """Write PNGs from (``tomo4d.track``, ``tomo4d.frames``, ``tomo4d.index``) into ``outdir``.

    Returns
    -------
    list of pathlib.Path
        ``tracking.png`` (virtual ADF images with the tracked mask at five tilts),
        ``frame.png`` (the tracked target's summed pattern at the middle tilt, log scale),
        ``reciprocal.png`` (indexed and other spots projected on three planes).
    """
    tracks, frames, idx = inputs
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    n_t = tracks.sizes["tilt"]
    picks = np.linspace(0, n_t - 1, 5).round().astype(int)
    fig, axes = plt.subplots(1, 5, figsize=(15, 3.2))
    for ax, it in zip(axes, picks, strict=True):
        ax.imshow(tracks["adf"][it].values, cmap="gray")
        ax.contour(tracks["mask"][it].values.astype(float), levels=[0.5], colors="r")
        ax.set_title(f"tilt {float(tracks['tilt'][it]):.1f} deg")
        ax.axis("off")
    paths.append(save_figure(fig, outdir / "tracking.png", opts.dpi))
    mid = frames.sizes["frame"] // 2
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(np.log1p(frames["frames_tracked"][mid].values), cmap="magma")
    ax.set_title("summed target pattern (log)")
    ax.axis("off")
    paths.append(save_figure(fig, outdir / "frame.png", opts.dpi))
    g = idx["spot_g"].values
    ok = idx["spot_indexed"].values.astype(bool)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, (i, j) in zip(axes, ((0, 1), (0, 2), (1, 2)), strict=True):
        ax.scatter(g[~ok, i], g[~ok, j], s=2, c="0.6", label="not indexed")
        ax.scatter(g[ok, i], g[ok, j], s=2, c="C3", label="indexed")
        ax.set_xlabel(f"g_{'xyz'[i]} (1/A)")
        ax.set_ylabel(f"g_{'xyz'[j]} (1/A)")
        ax.set_aspect("equal")
    axes[0].legend(loc="upper right", fontsize=7)
    paths.append(save_figure(fig, outdir / "reciprocal.png", opts.dpi))
    return paths
