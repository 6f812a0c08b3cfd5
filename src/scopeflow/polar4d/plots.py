"""Figures of the polar4d technique: displacement maps, vector field, errors, training loss."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scopeflow.figures import save_figure  # noqa: E402
from scopeflow.polar4d.options import FiguresOptions  # noqa: E402

__all__ = ["figures"]


def figures(inputs: list, opts: FiguresOptions, outdir: Path) -> list[Path]:
    """Write PNGs from (``polar4d.pmap``, ``polar4d.analysis``, ``polar4d.model``).

    Returns
    -------
    list of pathlib.Path
        ``pmap.png`` (dx, dy, dz and their 1-sigma), ``vectors.png`` (in-plane arrows coloured by
        dz, topological density), ``errors.png`` (when truth exists), ``loss.png``.
    """
    pmap, ana, model = inputs
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    disp, sig = pmap["disp_pm"].values, pmap["sigma_pm"].values
    paths = []
    fig, axes = plt.subplots(2, 3, figsize=(10, 6))
    for i, name in enumerate(("dx", "dy", "dz")):
        v = np.nanmax(np.abs(disp[..., i])) or 1.0
        im = axes[0, i].imshow(disp[..., i], cmap="RdBu_r", vmin=-v, vmax=v)
        axes[0, i].set_title(f"{name} [pm]")
        fig.colorbar(im, ax=axes[0, i])
        im = axes[1, i].imshow(sig[..., i], cmap="viridis")
        axes[1, i].set_title(f"sigma {name} [pm]")
        fig.colorbar(im, ax=axes[1, i])
    paths.append(save_figure(fig, outdir / "pmap.png", opts.dpi))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    rr, cc = np.mgrid[: disp.shape[0], : disp.shape[1]]
    q = axes[0].quiver(cc, rr, disp[..., 1], -disp[..., 0], disp[..., 2], cmap="RdBu_r")
    axes[0].invert_yaxis()
    axes[0].set_title("in-plane P (arrows), dz (colour)")
    fig.colorbar(q, ax=axes[0], label="dz [pm]")
    im = axes[1].imshow(ana["topological_density"].values, cmap="PuOr")
    axes[1].set_title("topological density")
    fig.colorbar(im, ax=axes[1])
    paths.append(save_figure(fig, outdir / "vectors.png", opts.dpi))
    if "error_pm" in ana:
        fig, ax = plt.subplots(figsize=(5, 4))
        for i, name in enumerate(("dx", "dy", "dz")):
            ax.hist(ana["error_pm"].values[..., i].ravel(), bins=30, histtype="step", label=name)
        ax.set_xlabel("error [pm]")
        ax.legend()
        paths.append(save_figure(fig, outdir / "errors.png", opts.dpi))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(model["loss"].values)
    ax.set_xlabel("step")
    ax.set_ylabel("Gaussian NLL + aux")
    paths.append(save_figure(fig, outdir / "loss.png", opts.dpi))
    return paths
