"""Spot search in summed frames and their inversion to 3D reciprocal space.

Peaks are found on a white top-hat of the frame (grey opening larger than a convergent-beam disk
removes the spots and keeps the smooth diffuse background), filtered with a disk matched to the
spot and kept where the disk sum exceeds ``threshold_sigma`` Poisson standard deviations of the
background under it. Positions are top-hat-weighted centroids; each spot is mapped onto the
Ewald sphere and rotated back by its tilt (:mod:`scopeflow.tomo4d.geometry`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max

from scopeflow.tomo4d.geometry import ewald_vectors, tilt_rotations, to_specimen

__all__ = ["find_spots", "spot_table", "specimen_vectors"]


def _disk(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy**2 + xx**2 <= radius**2).astype(float)


def find_spots(
    frame: np.ndarray, centre: np.ndarray, radius: float, threshold_sigma: float, min_r_px: float
) -> np.ndarray:
    """Spots of one frame.

    Parameters
    ----------
    frame : (k_row, k_col) float [counts]
    centre : (2,) float [px] direct beam (row, col)
    radius : float [px] spot disk radius
    threshold_sigma : float
    min_r_px : float [px] spots nearer the beam are ignored

    Returns
    -------
    spots : (n, 4) float
        row, col [px] (centroid), integrated intensity, its Poisson sigma [counts].
    """
    disk = _disk(radius + 1.0)
    size = 2 * int(np.ceil(radius)) + 7
    bg = ndi.grey_opening(frame, size=(size, size))
    top = frame - bg
    s_sum = ndi.correlate(top, disk, mode="constant")
    b_sum = ndi.correlate(bg, disk, mode="constant")
    signif = s_sum / np.sqrt(b_sum + s_sum + 1.0)
    peaks = peak_local_max(
        signif, min_distance=max(int(radius), 1), threshold_abs=threshold_sigma, exclude_border=2
    )
    if len(peaks) == 0:
        return np.zeros((0, 4))
    peaks = peaks[np.hypot(*(peaks - centre).T) >= min_r_px]
    out = []
    r = int(np.ceil(radius + 1))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    win = (yy**2 + xx**2) <= (radius + 1.0) ** 2
    n = frame.shape[0]
    for pr, pc in peaks:
        if pr - r < 0 or pc - r < 0 or pr + r >= n or pc + r >= frame.shape[1]:
            continue
        patch = top[pr - r : pr + r + 1, pc - r : pc + r + 1] * win
        w = np.clip(patch, 0, None)
        tot = w.sum()
        if tot <= 0:
            continue
        out.append(
            [
                pr + (w * yy).sum() / tot,
                pc + (w * xx).sum() / tot,
                patch.sum(),
                np.sqrt(frame[pr - r : pr + r + 1, pc - r : pc + r + 1][win].sum()),
            ]
        )
    return np.array(out).reshape(-1, 4)


def spot_table(
    frames: np.ndarray,
    centres: np.ndarray,
    radius: float,
    threshold_sigma: float,
    min_r_px: float,
) -> np.ndarray:
    """Spots of every frame: (n, 5) float (frame, row, col, intensity, sigma)."""
    rows = []
    for f in range(len(frames)):
        s = find_spots(frames[f], centres[f], radius, threshold_sigma, min_r_px)
        rows.append(np.column_stack([np.full(len(s), f), s]))
    return np.concatenate(rows) if rows else np.zeros((0, 5))


def specimen_vectors(
    spots: np.ndarray,
    centres: np.ndarray,
    tilt_deg: np.ndarray,
    axis_deg: float,
    k_pixel: float,
    wavelength_a: float,
) -> np.ndarray:
    """Reciprocal vectors (n, 3) [1/Å] of spots in the specimen frame (tilt 0 = lab).

    Parameters
    ----------
    spots : (n, >=3) float, columns frame, row, col
    centres : (frame, 2) float [px] direct beam per frame
    tilt_deg : (frame,) float [deg]
    axis_deg : float [deg] tilt-axis direction from the scan-column axis
    k_pixel : float [1/Å per px]
    wavelength_a : float [Å]
    """
    f = spots[:, 0].astype(int)
    k_xy = np.column_stack(
        [(spots[:, 2] - centres[f, 1]) * k_pixel, (spots[:, 1] - centres[f, 0]) * k_pixel]
    )
    g_lab = ewald_vectors(k_xy, wavelength_a)
    return to_specimen(g_lab, f, tilt_rotations(tilt_deg, axis_deg))
