"""Figures of the fpxm technique (the ``figures`` stage): field, pupil, strain, polarization."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scopeflow.figures import save_figure  # noqa: E402
from scopeflow.fpxm.options import FiguresOptions  # noqa: E402

__all__ = ["figures"]


def _extent(ds):
    r, c = ds["obj_row"].values, ds["obj_col"].values
    return (c[0] / 1e3, c[-1] / 1e3, r[-1] / 1e3, r[0] / 1e3)  # µm


def figures(inputs: list, opts: FiguresOptions, outdir: Path) -> list[Path]:
    """Write PNGs from (``fpxm.field``, ``fpxm.analysis``) into ``outdir``.

    Returns
    -------
    list of pathlib.Path
        ``field.png`` (amplitude, phase), ``pupil.png`` (recovered pupil amplitude/phase and
        the Zernike coefficients), ``strain.png`` (strain along G, tilt across G),
        ``polarization.png`` (|P|, P components, sign).
    """
    fld, ana = inputs
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    ext = _extent(ana)
    paths = []

    fig, ax = plt.subplots(1, 2, figsize=(10, 4.5))
    im = ax[0].imshow(ana["amplitude"].values[0], extent=ext, cmap="gray")
    fig.colorbar(im, ax=ax[0], label="amplitude")
    im = ax[1].imshow(ana["phase"].values[0], extent=ext, cmap=opts.cmap_phase)
    fig.colorbar(im, ax=ax[1], label="phase (referenced) [rad]")
    for a, t in zip(ax, ("Bragg field amplitude", "phase G·u"), strict=True):
        a.set(title=t, xlabel="x [µm]", ylabel="z [µm]")
    paths.append(save_figure(fig, outdir / "field.png", opts.dpi))

    pupil = fld["pupil_re"].values + 1j * fld["pupil_im"].values
    k = fld["k_col"].values
    kext = (k[0], k[-1], k[-1], k[0])
    fig, ax = plt.subplots(1, 3, figsize=(14, 4.2))
    im = ax[0].imshow(np.abs(pupil), extent=kext, cmap="magma")
    fig.colorbar(im, ax=ax[0], label="|P|")
    phase = np.where(np.abs(pupil) > 1e-3, np.angle(pupil), np.nan)
    im = ax[1].imshow(phase, extent=kext, cmap=opts.cmap_phase)
    fig.colorbar(im, ax=ax[1], label="arg P [rad]")
    for a, t in zip(ax[:2], ("pupil amplitude", "pupil phase"), strict=True):
        a.set(title=t, xlabel="θ_x [mrad]", ylabel="θ_z [mrad]")
    noll = fld["zernike"].values
    if noll.size:
        ax[2].bar([str(j) for j in noll], fld["zernike_coeff"].values)
    ax[2].set(title="Zernike coefficients (Noll)", xlabel="j", ylabel="rad RMS")
    paths.append(save_figure(fig, outdir / "pupil.png", opts.dpi))

    fig, ax = plt.subplots(1, 2, figsize=(10, 4.5))
    im = ax[0].imshow(ana["strain"].values[0], extent=ext, cmap="RdBu_r")
    fig.colorbar(im, ax=ax[0], label="ε along G")
    im = ax[1].imshow(ana["tilt"].values[0] * 1e3, extent=ext, cmap="RdBu_r")
    fig.colorbar(im, ax=ax[1], label="tilt across G [mrad]")
    for a, t in zip(ax, ("strain along G", "lattice tilt"), strict=True):
        a.set(title=t, xlabel="x [µm]", ylabel="z [µm]")
    paths.append(save_figure(fig, outdir / "strain.png", opts.dpi))

    pol = ana["polarization"].values[0]
    fig, ax = plt.subplots(1, 3, figsize=(14, 4.2))
    im = ax[0].imshow(ana["polarization_magnitude"].values[0], extent=ext, cmap="viridis")
    fig.colorbar(im, ax=ax[0], label="|P| [C/m²]")
    im = ax[1].imshow(pol[2], extent=ext, cmap="RdBu_r")
    fig.colorbar(im, ax=ax[1], label="P_z [C/m²]")
    im = ax[2].imshow(ana["polarization_sign"].values, extent=ext, cmap="coolwarm", vmin=-1, vmax=1)
    fig.colorbar(im, ax=ax[2], label="sign of P·G (0: unknown)")
    titles = ("|P| (local LGD equilibrium)", "P_z", "sign (needs ±E)")
    for a, t in zip(ax, titles, strict=True):
        a.set(title=t, xlabel="x [µm]", ylabel="z [µm]")
    paths.append(save_figure(fig, outdir / "polarization.png", opts.dpi))
    return paths
