"""Classical detector: lattice fit + peak finding + intensity-ratio classification of sites.

Per frame: the metal lattice from the first-order Fourier peaks
(:func:`~scopeflow.defects.lattice.fit_lattice_fft`), columns by peak finding
(``skimage.feature.peak_local_max`` with a minimum distance below half the W-S distance, else S2
columns are lost), a least-squares refinement of the affine lattice on the peaks matched to
sites, then every metal and S site is read out on the probe-matched (Gaussian-smoothed) image at
its peak (or at the lattice position when no peak is near) and classified by its ratio to the
median intact column of its sublattice, background taken at the empty hollow sites. Thresholds
sit halfway between the expected ratios (:data:`~scopeflow.defects.lattice.CONTRAST`). This is
the method that fails where the lattice does not hold (holes, rotated patches).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.feature import peak_local_max

from scopeflow.defects.lattice import CONTRAST, MO, S2, V_S, V_S2, V_W, W

__all__ = ["detect_frame_baseline", "site_grid"]


def site_grid(
    shape: tuple[int, int], vectors: np.ndarray, origin: np.ndarray, shift: float, border: float
) -> tuple[np.ndarray, np.ndarray]:
    """Lattice positions ``origin + (i + shift) a1 + (j + shift) a2`` inside a frame.

    Returns
    -------
    ij : (n, 2) int64
        Cell indices.
    pos : (n, 2) float64
        (row, col) [px], at least ``border`` px inside the frame.
    """
    ny, nx = shape
    corners = np.array([[0, 0], [ny, 0], [0, nx], [ny, nx]], float) - origin
    frac = np.linalg.solve(vectors.T, corners.T).T
    lo = np.floor(frac.min(0)).astype(int) - 1
    hi = np.ceil(frac.max(0)).astype(int) + 1
    ii, jj = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    ij = np.stack([ii.ravel(), jj.ravel()], 1)
    pos = origin + (ij + shift) @ vectors
    ok = (
        (pos[:, 0] >= border)
        & (pos[:, 0] <= ny - 1 - border)
        & (pos[:, 1] >= border)
        & (pos[:, 1] <= nx - 1 - border)
    )
    return ij[ok], pos[ok]


def _refine(peaks, vectors, origin):
    """Least-squares affine lattice (origin, a1, a2) from peaks near metal and S sites."""
    frac = np.linalg.solve(vectors.T, (peaks - origin).T).T
    rows, targets = [], []
    for shift in (0.0, 1.0 / 3.0):
        ij = np.round(frac - shift)
        site = (ij + shift) @ vectors + origin
        near = np.hypot(*(peaks - site).T) < 0.2 * np.linalg.norm(vectors[0])
        rows.append(np.column_stack([np.ones(near.sum()), ij[near] + shift]))
        targets.append(peaks[near])
    a = np.concatenate(rows)
    b = np.concatenate(targets)
    if len(a) < 10:
        return vectors, origin
    coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    return coef[1:3], coef[0]


def detect_frame_baseline(
    frame: np.ndarray,
    vectors: np.ndarray,
    origin: np.ndarray,
    *,
    sigma_px: float,
    min_distance_px: int,
) -> dict[str, np.ndarray]:
    """Classical defect detection in one frame.

    Parameters
    ----------
    frame : (row, col) float
        Counts.
    vectors, origin : (2, 2), (2,) float
        Initial lattice (from the FFT fit) [px].
    sigma_px : float
        Matched-filter width (the probe sigma) [px].
    min_distance_px : int
        Peak-finding minimum distance [px].

    Returns
    -------
    dict
        ``row, col`` [px], ``class`` int8, ``score`` float32 (distance of the ratio from the
        nearest decision threshold, in units of the threshold gap, clipped to [0, 1]).
    """
    smooth = ndimage.gaussian_filter(np.asarray(frame, np.float64), sigma_px)
    peaks = peak_local_max(
        smooth, min_distance=max(1, min_distance_px), threshold_rel=0.05, exclude_border=2
    ).astype(float)
    if len(peaks) > 10:
        vectors, origin = _refine(peaks, vectors, origin)
    border = 2 * sigma_px
    tol = 0.25 * np.linalg.norm(vectors[0]) / np.sqrt(3.0)
    tree_peaks = peaks if len(peaks) else np.zeros((0, 2))

    def read(shift: float) -> tuple[np.ndarray, np.ndarray]:
        _, pos = site_grid(frame.shape, vectors, origin, shift, border)
        if len(tree_peaks):
            d, k = cKDTree(tree_peaks).query(pos)
            pos = np.where((d < tol)[:, None], tree_peaks[np.minimum(k, len(tree_peaks) - 1)], pos)
        val = ndimage.map_coordinates(smooth, pos.T, order=1)
        return pos, val

    m_pos, m_val = read(0.0)
    s_pos, s_val = read(1.0 / 3.0)
    _, h_val = read(2.0 / 3.0)
    bg = np.median(h_val)
    m_rel = (m_val - bg) / max(np.median(m_val) - bg, 1e-9)
    s_rel = (s_val - bg) / max(np.median(s_val) - bg, 1e-9)
    mo = CONTRAST[MO] / CONTRAST[W]
    single = CONTRAST[V_S] / CONTRAST[S2]
    out = {"row": [], "col": [], "class": [], "score": []}
    for pos, rel, levels, classes in (
        (m_pos, m_rel, (0.0, mo, 1.0), (V_W, MO, W)),
        (s_pos, s_rel, (0.0, single, 1.0), (V_S2, V_S, S2)),
    ):
        cuts = 0.5 * (np.asarray(levels[:-1]) + np.asarray(levels[1:]))
        k = np.searchsorted(cuts, rel)
        gap = np.diff(levels).min()
        score = np.clip(np.min(np.abs(rel[:, None] - cuts[None, :]), 1) / (0.5 * gap), 0, 1)
        for kk in (0, 1):  # the two defect classes of this sublattice
            sel = k == kk
            out["row"].append(pos[sel, 0])
            out["col"].append(pos[sel, 1])
            out["class"].append(np.full(int(sel.sum()), classes[kk], np.int8))
            out["score"].append(score[sel].astype(np.float32))
    return {k: np.concatenate(v) for k, v in out.items()}
