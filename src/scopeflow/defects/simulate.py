"""Simulated HAADF-STEM movies of Mo-doped WS2 with known defects, kinetics and beam damage.

Image model (incoherent Z-contrast imaging): expected counts per pixel

    lambda(r) = s * (b + sum_k c_k exp(-|r - r_k|^2 / (2 sigma^2)))

with column contrasts ``c_k`` from :data:`~scopeflow.defects.lattice.CONTRAST` (Z^1.7 per atom),
background ``b`` relative to a W column (:func:`background_level`), probe width ``sigma`` and
``s = dose / (1 + b)`` so that the mean count at an isolated W column peak is ``dose``; Poisson
noise on top. The slow scan runs along rows: every row is sampled at its own time (drift shears
a frame) and with its own fast-scan offset (scan-line jitter: a column at ``x`` appears at
``x - jitter[row]``).
The kinetics live in :mod:`scopeflow.defects.kinetics_sim`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from scopeflow.defects import kinetics_sim as ks
from scopeflow.defects.lattice import (
    A_WS2,
    CLASS_NAMES,
    COMPLEX_NAMES,
    CONTRAST,
    OBJECT_NAMES,
    hop_sq,
)
from scopeflow.defects.options import SimulateOptions

__all__ = ["background_level", "render_frame", "simulate_frames", "simulate_movie", "movie_dataset"]


def background_level(background: float, probe_sigma: float, a: float = A_WS2) -> float:
    """Background in units of the W column peak.

    ``background`` is the background per pixel as a fraction of the mean column signal per
    pixel of an intact lattice, ``(1 + c_S2) 2 pi sigma^2 / (sqrt(3) a^2 / 2)`` (W peak = 1), so
    ``background = 0.1`` adds 10 % to the mean counts of a frame.
    """
    cell = np.sqrt(3.0) / 2.0 * a**2
    return background * (1.0 + CONTRAST[3]) * 2.0 * np.pi * probe_sigma**2 / cell


def render_frame(
    pos_px: np.ndarray,
    amp: np.ndarray,
    shape: tuple[int, int],
    sigma_px: float,
    jitter: np.ndarray,
) -> np.ndarray:
    """Noise-free column image (sum of Gaussians) with per-row fast-scan jitter.

    Parameters
    ----------
    pos_px : (n, 2) float
        Column positions (row, col) in the undistorted scan frame [px].
    amp : (n,) float
        Peak heights relative to a W column.
    shape : (int, int)
        (rows, cols).
    sigma_px : float
        Gaussian width [px].
    jitter : (rows,) float
        Fast-scan offset of each row [px].

    Returns
    -------
    (row, col) float64
        Image; pixels farther than 4 sigma from a column get no contribution from it.
    """
    ny, nx = shape
    rad = int(np.ceil(4 * sigma_px))
    off = np.arange(-rad, rad + 1)
    keep = (
        (amp > 0)
        & (pos_px[:, 0] > -rad)
        & (pos_px[:, 0] < ny + rad)
        & (pos_px[:, 1] > -rad - 3)
        & (pos_px[:, 1] < nx + rad + 3)
    )
    p, a = pos_px[keep], amp[keep]
    r0 = np.floor(p[:, 0]).astype(np.int64)
    c0 = np.floor(p[:, 1]).astype(np.int64)
    rr = r0[:, None, None] + off[None, :, None]  # (n, k, 1)
    cc = c0[:, None, None] + off[None, None, :]  # (n, 1, k)
    jit = jitter[np.clip(rr, 0, ny - 1)]
    dy = rr - p[:, 0, None, None]
    dx = cc + jit - p[:, 1, None, None]
    g = a[:, None, None] * np.exp(-(dy**2 + dx**2) / (2 * sigma_px**2))
    rr, cc = np.broadcast_arrays(rr, cc)
    ok = (rr >= 0) & (rr < ny) & (cc >= 0) & (cc < nx)
    flat = np.bincount((rr * nx + cc)[ok], weights=g[ok], minlength=ny * nx)
    return flat.reshape(ny, nx)


def _offsets(opts: SimulateOptions, rng: np.random.Generator, margin: float) -> np.ndarray:
    """Field-of-view offset (row, col) [Å] at the start of each frame (plus one after)."""
    steps = np.asarray(opts.drift, float)[None, :] + opts.drift_noise * rng.standard_normal(
        (opts.n_frames, 2)
    )
    off = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, 0)])
    return off - off.min(0) + margin


def simulate_frames(opts: SimulateOptions) -> tuple[np.ndarray, dict, dict]:
    """Run the kinetics and render every frame.

    Parameters
    ----------
    opts : SimulateOptions

    Returns
    -------
    counts : (frame, row, col) float32
        Poisson counts.
    truth : dict of (point,) arrays
        ``frame, row, col`` (image position [px]), ``class, track, object, complex,
        disordered`` for every column and vacant site inside the frame.
    gt : dict
        Scalar ground truth (D, hop rate, transition matrix, ...), JSON-able.
        ``D_realised_A2_per_s`` is what the movie shows: the mean squared lattice step of
        the free S vacancies over every frame they start in the image (steps that leave
        it included) / (4 dt), over ``D_realised_steps`` steps.
    """
    rng = np.random.default_rng(opts.seed)
    ny, nx = int(opts.shape[0]), int(opts.shape[1])
    ps = opts.pixel_size
    margin = 2 * A_WS2
    off = _offsets(opts, rng, margin)
    extent = (ny * ps + off[:, 0].max() + margin, nx * ps + off[:, 1].max() + margin)
    area_nm2 = ny * nx * ps**2 / 100.0
    ext_area = extent[0] * extent[1] / 100.0
    tmat = np.asarray(opts.transition, float).reshape(3, 3)
    if not np.allclose(tmat.sum(1), 1.0, atol=1e-6):
        raise ValueError(f"simulate.transition: rows must sum to 1, got {tmat.sum(1)}")
    angle = np.deg2rad(opts.lattice_angle)
    st = ks.new_sample(
        extent,
        rng,
        a=A_WS2,
        angle=angle,
        n_walkers=round(opts.vs_density * ext_area),
        n_complexes=round(opts.complex_density * ext_area),
        n_mo=round(opts.mo_density * ext_area),
        n_vs2=round(opts.vs2_density * ext_area),
        n_vw=round(opts.vw_density * ext_area),
        transition=tmat,
    )
    d_frame = opts.diffusion * opts.frame_time
    hop_rate = 4.0 * d_frame / A_WS2**2
    sigma_px = opts.probe_sigma / ps
    bg = background_level(opts.background, opts.probe_sigma, A_WS2)
    scale = opts.dose / (1.0 + bg)
    counts = np.empty((opts.n_frames, ny, nx), np.float32)
    tables, steps = [], []
    rows = np.arange(ny)
    for t in range(opts.n_frames):
        if t == opts.disorder_start:
            ks.add_disorder(
                st,
                rng,
                n_holes=opts.n_holes,
                hole_radius=opts.hole_radius,
                n_lines=opts.n_lines,
                line_length=opts.line_length,
                n_patches=opts.n_patches,
                patch_radius=opts.patch_radius,
                a=A_WS2,
                angle=angle,
            )
        elif t > opts.disorder_start:
            ks.grow_holes(st, opts.hole_growth)
        cols = ks.columns(st)
        # offset of each scan row (time t + row / ny), linear between frame starts
        frac = rows / ny
        row_off = off[t][None, :] * (1 - frac[:, None]) + off[t + 1][None, :] * frac[:, None]
        jitter = opts.jitter * rng.standard_normal(ny)
        # image row of each column: solve y = (p - off(y)) / ps by fixed-point iteration
        y = (cols["pos"][:, 0] - off[t][0]) / ps
        for _ in range(2):
            yi = np.clip(np.round(y).astype(int), 0, ny - 1)
            y = (cols["pos"][:, 0] - row_off[yi, 0]) / ps
        yi = np.clip(np.round(y).astype(int), 0, ny - 1)
        x = (cols["pos"][:, 1] - row_off[yi, 1]) / ps
        amp = np.array([CONTRAST.get(int(c), 0.0) for c in range(7)])[cols["cls"]]
        clean = render_frame(np.stack([y, x], 1), amp, (ny, nx), sigma_px, jitter)
        counts[t] = rng.poisson(scale * (bg + clean)).astype(np.float32)
        x_img = x - jitter[yi]
        inside = (y >= 0) & (y <= ny - 1) & (x_img >= 0) & (x_img <= nx - 1)
        tab = {k: v[inside] for k, v in cols.items() if k != "pos"}
        tab["row"], tab["col"] = y[inside], x_img[inside]
        tab["frame"] = np.full(int(inside.sum()), t, np.int32)
        tables.append(tab)
        if t + 1 < opts.n_frames:
            seen = np.unique(
                tab["track"][(tab["object"] == OBJECT_NAMES.index("V_S")) & (tab["track"] >= 0)]
            )
            start = {int(k): st.walkers[int(k)] for k in seen if int(k) in st.walkers}
            ks.step(st, rng, hop_rate, tmat)
            steps += [
                float(hop_sq(ij[0] - start[k][0], ij[1] - start[k][1]))
                for k, ij in st.walkers.items()
                if k in start
            ]
    truth = {k: np.concatenate([tb[k] for tb in tables]) for k in tables[0]}
    # D the movie shows: every walker step that starts in the image, including those that
    # leave it (keeping only pairs seen in both frames drops the moves across the edge and
    # put the value 2.3 % low over 200 acceptance-settings movies)
    d_real = float(np.mean(steps)) / (4 * opts.frame_time) if steps else float("nan")
    gt = {
        "D_A2_per_s": opts.diffusion,
        "D_A2_per_frame": d_frame,
        "hop_rate_per_frame": hop_rate,
        "D_realised_A2_per_s": d_real,
        "D_realised_steps": len(steps),
        "transition_matrix": tmat.tolist(),
        "complex_names": list(COMPLEX_NAMES),
        "lattice_constant_A": A_WS2,
        "lattice_angle_deg": opts.lattice_angle,
        "disorder_start": opts.disorder_start,
        "field_area_nm2": area_nm2,
    }
    return counts, truth, gt


def movie_dataset(
    counts: np.ndarray,
    *,
    pixel_size: float,
    frame_time: float,
    dose: float | None,
    electron_dose: float | None,
    extra_attrs: dict | None = None,
) -> xr.Dataset:
    """Canonical ``defects.movie`` dataset (shared by simulate and ingest).

    Parameters
    ----------
    counts : (frame, row, col) float32
        Movie [counts].
    pixel_size : float
        [Å].
    frame_time : float
        [s].
    dose, electron_dose : float or None
        Mean counts at a W column peak; electron dose per frame [e/Å^2].
    """
    nf, ny, nx = counts.shape
    ds = xr.Dataset(
        {"image": (("frame", "row", "col"), counts.astype(np.float32), {"units": "counts"})},
        coords={
            "frame": ("frame", np.arange(nf), {"units": "frame"}),
            "time": ("frame", np.arange(nf) * frame_time, {"units": "s"}),
            "row": ("row", np.arange(ny) * pixel_size, {"units": "Å"}),
            "col": ("col", np.arange(nx) * pixel_size, {"units": "Å"}),
        },
    )
    ds.attrs.update(
        pixel_size=float(pixel_size),
        pixel_size_units="Å",
        frame_time=float(frame_time),
        frame_time_units="s",
        dose=None if dose is None else float(dose),
        dose_units="mean counts at a W column peak",
        electron_dose=None if electron_dose is None else float(electron_dose),
        electron_dose_units="e/Å^2 per frame",
        class_names=list(CLASS_NAMES),
        object_names=list(OBJECT_NAMES),
    )
    ds.attrs.update(extra_attrs or {})
    return ds


def simulate_movie(inputs: list, opts: SimulateOptions) -> xr.Dataset:
    """Stage ``simulate``: a ``defects.movie`` store with ground truth.

    Returns
    -------
    xarray.Dataset
        ``image (frame, row, col)`` float32 [counts]; truth table along ``point``:
        ``true_frame, true_row, true_col`` [px] (image position), ``true_class`` (class code),
        ``true_track`` (defect identity, -1 for intact columns), ``true_object`` (object code of
        an object centre, else -1), ``true_complex`` (configuration of a Mo complex, else -1),
        ``true_disordered``; ``attrs["ground_truth"]`` with D and the transition matrix.
    """
    if inputs:
        raise ValueError("defects simulate takes no input stores")
    counts, truth, gt = simulate_frames(opts)
    ds = movie_dataset(
        counts,
        pixel_size=opts.pixel_size,
        frame_time=opts.frame_time,
        dose=opts.dose,
        electron_dose=opts.electron_dose,
        extra_attrs={"simulation": dataclasses.asdict(opts), "ground_truth": gt},
    )
    ds.attrs["simulation"]["shape"] = list(opts.shape)
    ds.attrs["simulation"]["drift"] = list(opts.drift)
    ds.attrs["simulation"]["transition"] = list(opts.transition)
    units = {"row": "px", "col": "px"}
    dtypes = {
        "frame": np.int32,
        "row": np.float32,
        "col": np.float32,
        "cls": np.int8,
        "track": np.int64,
        "object": np.int8,
        "complex": np.int8,
        "disordered": bool,
    }
    for key, dt in dtypes.items():
        name = "true_class" if key == "cls" else f"true_{key}"
        ds[name] = ("point", truth[key].astype(dt), {"units": units.get(key, "1")})
    return ds
