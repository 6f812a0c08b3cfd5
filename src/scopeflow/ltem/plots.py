"""The ``figures`` stage: phase maps, induction colour-wheel maps, AD vs TIE vs truth.

Induction is shown with the usual LTEM colour wheel: hue = direction of (Bx, By), value =
|B| / max |B|, with a wheel legend.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.colors import hsv_to_rgb  # noqa: E402

from scopeflow.ltem.options import FiguresOptions  # noqa: E402

__all__ = ["colour_wheel", "figures"]


def colour_wheel(bx, by, b_max: float | None = None) -> np.ndarray:
    """RGB image of an in-plane vector field.

    Parameters
    ----------
    bx, by : (rows, cols) array_like
        Components along columns (x) and rows (y).
    b_max : float, optional
        Magnitude mapped to full brightness (the field's maximum by default).

    Returns
    -------
    (rows, cols, 3) float ndarray in [0, 1]
    """
    bx, by = np.asarray(bx, float), np.asarray(by, float)
    mag = np.hypot(bx, by)
    b_max = b_max or float(mag.max()) or 1.0
    hue = (np.arctan2(by, bx) / (2 * np.pi)) % 1.0
    hsv = np.stack([hue, np.ones_like(hue), np.clip(mag / b_max, 0, 1)], axis=-1)
    return hsv_to_rgb(hsv)


def _wheel_legend(ax) -> None:
    n = 101
    y, x = np.mgrid[-1 : 1 : n * 1j, -1 : 1 : n * 1j]
    rgb = colour_wheel(x, y, 1.0)
    rgb[np.hypot(x, y) > 1] = 1.0
    ax.imshow(rgb, origin="upper", extent=(-1, 1, 1, -1))
    ax.set_axis_off()
    ax.set_title("B direction", fontsize=8)


def _extent(ds):
    r, c = ds["row"].values, ds["col"].values
    return (c[0], c[-1], r[-1], r[0])


def figures(inputs: list[xr.Dataset], opts: FiguresOptions, outdir: Path) -> list[Path]:
    """Write the ltem figures for an ``ltem.analysis`` store.

    Returns
    -------
    list of pathlib.Path
        ``phase.png`` (TIE, AD and truth when present, common colour scale), ``induction.png``
        (colour-wheel maps), ``comparison.png`` (line profiles and error maps, with truth),
        ``uncertainty.png`` (when the bootstrap ran).
    """
    ds = inputs[0]
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    ext = _extent(ds)
    methods = [m for m in ("tie", "ad") if f"phase_{m}" in ds]
    panels = [(m.upper(), ds[f"phase_{m}"].values) for m in methods]
    if "true_phase" in ds:
        panels.append(("truth", ds["true_phase"].values))
    panels = [(t, p - p.mean()) for t, p in panels]
    lo = min(float(p.min()) for _, p in panels)
    hi = max(float(p.max()) for _, p in panels)
    paths = []

    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    for ax, (title, p) in zip(axes[0], panels, strict=True):
        im = ax.imshow(p, cmap=opts.phase_cmap, vmin=lo, vmax=hi, extent=ext)
        ax.set_title(f"phase {title}")
        ax.set_xlabel("col [nm]")
    axes[0, 0].set_ylabel("row [nm]")
    fig.colorbar(im, ax=axes[0].tolist(), label="phase [rad]", shrink=0.85)
    paths.append(outdir / "phase.png")
    fig.savefig(paths[-1], dpi=opts.dpi)
    plt.close(fig)

    fields = [(m.upper(), ds[f"bx_{m}_tnm"].values, ds[f"by_{m}_tnm"].values) for m in methods]
    if "true_bx_tnm" in ds:
        fields.append(("truth", ds["true_bx_tnm"].values, ds["true_by_tnm"].values))
    b_max = max(float(np.hypot(bx, by).max()) for _, bx, by in fields)
    fig, axes = plt.subplots(
        1,
        len(fields) + 1,
        figsize=(3.4 * len(fields) + 1.6, 3.4),
        gridspec_kw={"width_ratios": [1] * len(fields) + [0.45]},
    )
    for ax, (title, bx, by) in zip(axes[:-1], fields, strict=True):
        ax.imshow(colour_wheel(bx, by, b_max), extent=ext)
        ax.set_title(f"B t {title} (max {b_max:.0f} T nm)", fontsize=9)
        ax.set_xlabel("col [nm]")
    _wheel_legend(axes[-1])
    paths.append(outdir / "induction.png")
    fig.savefig(paths[-1], dpi=opts.dpi)
    plt.close(fig)

    if "true_phase" in ds:
        truth = panels[-1][1]
        fig, axes = plt.subplots(1, len(methods) + 1, figsize=(3.8 * (len(methods) + 1), 3.4))
        row = truth.shape[0] // 2
        x = ds["col"].values
        for (title, p), ax in zip(panels[:-1], axes[1:], strict=True):
            err = p - truth
            lim = float(np.abs(err).max())
            im = ax.imshow(err, cmap="RdBu_r", vmin=-lim, vmax=lim, extent=ext)
            ax.set_title(f"{title} - truth [rad]")
            fig.colorbar(im, ax=ax, shrink=0.8)
            axes[0].plot(x, p[row], label=title)
        axes[0].plot(x, truth[row], "k--", label="truth")
        axes[0].set_xlabel("col [nm]")
        axes[0].set_ylabel("phase [rad] (centre row)")
        axes[0].legend(fontsize=8)
        paths.append(outdir / "comparison.png")
        fig.savefig(paths[-1], dpi=opts.dpi, bbox_inches="tight")
        plt.close(fig)

    if "phase_ad_sigma" in ds:
        fig, ax = plt.subplots(figsize=(4.2, 3.4))
        im = ax.imshow(ds["phase_ad_sigma"].values, cmap="magma", extent=ext)
        ax.set_title("AD phase std (bootstrap)")
        fig.colorbar(im, ax=ax, label="rad")
        paths.append(outdir / "uncertainty.png")
        fig.savefig(paths[-1], dpi=opts.dpi, bbox_inches="tight")
        plt.close(fig)
    return paths
