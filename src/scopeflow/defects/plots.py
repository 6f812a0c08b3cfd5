"""Stage ``figures``: frames with detections, class map, tracks, MSD, transition matrices."""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from scopeflow.defects.lattice import CLASS_NAMES, DEFECT_CLASSES, OBJECT_NAMES  # noqa: E402
from scopeflow.defects.options import FiguresOptions  # noqa: E402

__all__ = ["figures"]

_COLORS = {2: "tab:red", 4: "tab:cyan", 5: "gold", 6: "magenta"}


def _frames(opts: FiguresOptions, n: int) -> list[int]:
    return sorted({f % n for f in opts.frames})


def figures(inputs: list[xr.Dataset], opts: FiguresOptions, outdir: pathlib.Path) -> list:
    """Write the PNG figures.

    Parameters
    ----------
    inputs : [movie, detections, tracks, kinetics]
    outdir : pathlib.Path

    Returns
    -------
    list of pathlib.Path
    """
    movie, det, trk, kin = inputs
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    nf = movie.sizes["frame"]
    methods = det.attrs.get("methods", [])
    for f in _frames(opts, nf):
        img = movie["image"].isel(frame=f).values
        fig, axes = plt.subplots(1, len(methods), figsize=(6 * len(methods), 6), squeeze=False)
        for ax, meth in zip(axes[0], methods, strict=True):
            ax.imshow(img, cmap="gray")
            sel = det[f"{meth}_frame"].values == f
            for c in DEFECT_CLASSES:
                s = sel & (det[f"{meth}_class"].values == c)
                ax.plot(
                    det[f"{meth}_col"].values[s],
                    det[f"{meth}_row"].values[s],
                    "o",
                    mfc="none",
                    mec=_COLORS[c],
                    ms=5,
                    label=CLASS_NAMES[c],
                )
            ax.set_title(f"frame {f}: {meth} detections")
            ax.legend(loc="upper right", fontsize=7)
            ax.set_axis_off()
        paths.append(outdir / f"detections_frame{f:03d}.png")
        fig.savefig(paths[-1], dpi=opts.dpi, bbox_inches="tight")
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(6, 6))
        ax.imshow(img, cmap="gray")
        sel = trk["frame"].values == f
        cls = trk["class"].values[sel]
        sc = ax.scatter(
            trk["col"].values[sel],
            trk["row"].values[sel],
            c=np.where(cls >= 0, cls, trk["cluster"].values[sel]),
            cmap="tab10",
            vmin=-0.5,
            vmax=9.5,
            s=18,
        )
        ax.set_title(f"frame {f}: object classes ({', '.join(OBJECT_NAMES)} = 0..6)")
        fig.colorbar(sc, ax=ax, shrink=0.7)
        ax.set_axis_off()
        paths.append(outdir / f"classes_frame{f:03d}.png")
        fig.savefig(paths[-1], dpi=opts.dpi, bbox_inches="tight")
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(movie["image"].isel(frame=0).values, cmap="gray", alpha=0.6)
    tk = trk["track"].values
    ps = float(trk.attrs["pixel_size"])
    o0 = trk["lattice_origin"].values[0]
    for t in np.unique(tk[tk >= 0]):
        s = np.flatnonzero(tk == t)
        if len(s) < 3:
            continue
        s = s[np.argsort(trk["frame"].values[s])]
        ax.plot(
            trk["col_A"].values[s] / ps + o0[1],
            trk["row_A"].values[s] / ps + o0[0],
            "-",
            lw=0.8,
            color=_COLORS.get(int(trk["detected_class"].values[s[0]]), "w"),
        )
    ax.set_title("tracks (drift-corrected, frame-0 coordinates)")
    ax.set_axis_off()
    paths.append(outdir / "tracks.png")
    fig.savefig(paths[-1], dpi=opts.dpi, bbox_inches="tight")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 4))
    lag = kin["lag"].values
    ax.plot(lag, kin["msd"].values, "o", label="MSD (V_S)")
    d = kin.attrs["diffusion"]
    ft = float(kin.attrs["frame_time"])
    dm = d["msd"]["A2_per_frame"]["value"]
    ax.plot(lag, 4 * dm * lag / ft + d["msd_offset_A2"], "-", label=f"fit D={dm / ft:.3g} Å²/s")
    dh = d["hop"]["A2_per_frame"]["value"]
    ax.plot(lag, 4 * dh * lag / ft + d["msd_offset_A2"], "--", label=f"hops D={dh / ft:.3g} Å²/s")
    ax.set_xlabel("lag [s]")
    ax.set_ylabel("MSD [Å²]")
    ax.legend()
    paths.append(outdir / "msd.png")
    fig.savefig(paths[-1], dpi=opts.dpi, bbox_inches="tight")
    plt.close(fig)
    mats = [
        ("uncorrected", kin["transition_uncorrected"].values),
        ("corrected", kin["transition_corrected"].values),
    ]
    gt = movie.attrs.get("ground_truth", {})
    if "transition_matrix" in gt:
        mats.append(("truth", np.asarray(gt["transition_matrix"])))
    fig, axes = plt.subplots(1, len(mats), figsize=(4 * len(mats), 3.6))
    names = kin["from_state"].attrs.get("names", [])
    for ax, (title, p) in zip(np.atleast_1d(axes), mats, strict=True):
        ax.imshow(p, vmin=0, vmax=1, cmap="viridis")
        for (i, j), v in np.ndenumerate(p):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w", fontsize=8)
        ax.set_xticks(range(len(names)), names, rotation=45, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_title(title)
    paths.append(outdir / "transitions.png")
    fig.savefig(paths[-1], dpi=opts.dpi, bbox_inches="tight")
    plt.close(fig)
    return paths
