"""Image-comparison metrics for reconstructions scored against ground truth (numpy).

- :func:`rel_l2_meanfree`: ``||(a - <a>) - (b - <b>)|| / ||b - <b>||``, the relative L2 error of
  the mean-free map (a phase is defined up to a constant).
- :func:`scale_factor`: least-squares slope of the mean-free recovered map on the mean-free true
  map, ``<a' b'> / <b' b'>`` (1 = quantitatively right amplitude).
- :func:`ncc`: normalised cross-correlation (Pearson r) of two maps.
- :func:`frc` / :func:`frc_resolution`: Fourier ring correlation and the spatial period where it
  first drops below a threshold (van Heel & Schatz, J. Struct. Biol. 151, 250 (2005),
  doi:10.1016/j.jsb.2005.05.009).
"""

from __future__ import annotations

import numpy as np

__all__ = ["rel_l2_meanfree", "scale_factor", "ncc", "frc", "frc_resolution"]


def _meanfree(a, mask=None):
    a = np.asarray(a, dtype=np.float64)
    if mask is not None:
        a = a[np.asarray(mask, dtype=bool)]
    return a - a.mean()


def rel_l2_meanfree(recovered, truth, mask=None) -> float:
    """Relative L2 error of the mean-free ``recovered`` map against the mean-free ``truth``.

    Parameters
    ----------
    recovered, truth : (rows, cols) array_like
    mask : (rows, cols) bool array_like, optional
        Pixels to include (all by default).

    Returns
    -------
    float
    """
    a, b = _meanfree(recovered, mask), _meanfree(truth, mask)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def scale_factor(recovered, truth, mask=None) -> float:
    """Least-squares slope of the mean-free recovered map on the mean-free true map."""
    a, b = _meanfree(recovered, mask), _meanfree(truth, mask)
    return float(np.sum(a * b) / np.sum(b * b))


def ncc(a, b, mask=None) -> float:
    """Normalised cross-correlation (Pearson correlation coefficient) of two maps."""
    a, b = _meanfree(a, mask), _meanfree(b, mask)
    return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))


def frc(a, b, pixel_size: float, n_rings: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fourier ring correlation of two (rows, cols) maps.

    Parameters
    ----------
    a, b : (rows, cols) array_like
    pixel_size : float
        Pixel size [length].
    n_rings : int, optional
        Number of rings up to the Nyquist frequency (``min(rows, cols) // 2`` by default).

    Returns
    -------
    q : (n_rings,) ndarray [1/length]
        Ring centre frequencies.
    frc : (n_rings,) ndarray
    """
    a, b = _meanfree(a), _meanfree(b)
    fa, fb = np.fft.fft2(a), np.fft.fft2(b)
    qy = np.fft.fftfreq(a.shape[0], d=pixel_size)[:, None]
    qx = np.fft.fftfreq(a.shape[1], d=pixel_size)[None, :]
    q = np.hypot(qy, qx)
    n_rings = n_rings or min(a.shape) // 2
    q_max = 0.5 / pixel_size
    idx = np.floor(q / q_max * n_rings).astype(int).ravel()
    keep = idx < n_rings
    idx = idx[keep]
    cross = np.bincount(idx, (fa * fb.conj()).real.ravel()[keep], minlength=n_rings)
    pa = np.bincount(idx, (np.abs(fa) ** 2).ravel()[keep], minlength=n_rings)
    pb = np.bincount(idx, (np.abs(fb) ** 2).ravel()[keep], minlength=n_rings)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.where(pa * pb > 0, cross / np.sqrt(pa * pb), 0.0)
    centres = (np.arange(n_rings) + 0.5) * q_max / n_rings
    return centres, curve


def frc_resolution(q: np.ndarray, curve: np.ndarray, threshold: float = 0.5) -> float:
    """Spatial period ``1 / q`` where the FRC first falls below ``threshold``.

    The first ring (lowest frequency) is skipped. Returns the Nyquist period ``1 / q[-1]``
    (rounded to the last ring) when the curve never drops below the threshold.

    Returns
    -------
    float [length]
    """
    below = np.nonzero(curve[1:] < threshold)[0]
    if below.size == 0:
        return float(1.0 / q[-1])
    i = below[0] + 1
    # linear interpolation of the crossing between rings i-1 and i
    c0, c1 = curve[i - 1], curve[i]
    t = (c0 - threshold) / (c0 - c1) if c0 != c1 else 0.0
    return float(1.0 / (q[i - 1] + t * (q[i] - q[i - 1])))
