"""Figures of the correlative comparison (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from scopeflow.correlative.options import FiguresOptions  # noqa: E402

__all__ = ["figures"]


def figures(inputs: list[xr.Dataset], opts: FiguresOptions, outdir: Path) -> list[Path]:
    """Stage ``figures``: ``comparison.png`` (maps) and ``scatter.png`` (fpxm vs polar4d).

    Parameters
    ----------
    inputs : [comparison]
        A ``correlative.comparison`` store.
    opts : FiguresOptions
    outdir : pathlib.Path
        Folder for the PNGs.
    """
    (ds,) = inputs
    outdir = Path(outdir)
    rows, cols = ds["row"].values, ds["col"].values
    extent = (cols[0], cols[-1], rows[-1], rows[0])
    pa, pb = ds["p_polar4d"].values, ds["p_fpxm"].values
    ma, mb = ds["magnitude_polar4d"].values, ds["magnitude_fpxm"].values
    vmax = float(np.nanmax(np.abs(np.concatenate([pa[2].ravel(), pb[2].ravel(), [1.0]]))))
    panels = [
        ("|P| polar4d [µC/cm²]", ma, "viridis", (0, vmax)),
        ("|P| fpxm [µC/cm²]", mb, "viridis", (0, vmax)),
        ("|P| fpxm - polar4d", mb - ma, "RdBu_r", (-vmax / 2, vmax / 2)),
        ("P_z polar4d [µC/cm²]", pa[2], "RdBu_r", (-vmax, vmax)),
        ("P_z fpxm [µC/cm²]", pb[2], "RdBu_r", (-vmax, vmax)),
        ("angle between P [deg]", ds["angle_deg"].values, "magma", (0, 180)),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(11, 6.5), constrained_layout=True)
    for ax, (title, img, cmap, lim) in zip(axes.ravel(), panels, strict=True):
        im = ax.imshow(img, cmap=cmap, vmin=lim[0], vmax=lim[1], extent=extent, aspect="auto")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x [nm]")
        ax.set_ylabel("z [nm]")
        fig.colorbar(im, ax=ax, shrink=0.8)
    paths = [outdir / "comparison.png"]
    fig.savefig(paths[0], dpi=opts.dpi)
    plt.close(fig)

    ok = ds["compared"].values.astype(bool)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), constrained_layout=True)
    for ax, (name, a, b) in zip(
        axes, (("|P|", ma, mb), ("P_z", pa[2], pb[2])), strict=True
    ):  # fmt: skip
        ax.plot(a[ok], b[ok], ".", ms=4)
        ax.plot([-vmax, vmax], [-vmax, vmax], "k--", lw=0.8)
        ax.set_xlabel(f"{name} polar4d [µC/cm²]")
        ax.set_ylabel(f"{name} fpxm [µC/cm²]")
    paths.append(outdir / "scatter.png")
    fig.savefig(paths[1], dpi=opts.dpi)
    plt.close(fig)
    return paths
