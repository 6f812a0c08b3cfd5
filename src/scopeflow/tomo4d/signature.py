"""Split touching particles by their diffraction: two-class clustering of the probes' patterns.

Touching particles look alike in a thickness-like image but not in diffraction: each crystal
lights its own Bragg spots. The probes of the particle blob near the predicted mask are split
by a nearest-centroid (2-means) iteration on their patterns restricted to the tilt's Bragg
pixels (binned 2 x 2, square-root counts, unit norm), seeded with the predicted mask as the
target class and the rest of the foreground as the other class.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["bragg_vectors", "split_by_diffraction"]


def bragg_vectors(
    pattern: np.ndarray, pixel: np.ndarray, counts: np.ndarray, bragg: np.ndarray, n_pat: int
) -> np.ndarray:
    """Unit-norm patterns (n_pat, n_bins) on the Bragg pixels, binned 2 x 2, sqrt counts."""
    n_det = bragg.shape[0]
    keep = bragg.ravel()[pixel]
    rr, cc = np.divmod(pixel[keep], n_det)
    bins = (rr // 2) * (n_det // 2) + cc // 2
    n_bins = (n_det // 2) ** 2
    v = np.zeros(n_pat * n_bins, np.float32)
    np.add.at(v, pattern[keep] * n_bins + bins, counts[keep])
    v = np.sqrt(v.reshape(n_pat, n_bins))
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)


def split_by_diffraction(
    vectors: np.ndarray, fg: np.ndarray, pred: np.ndarray, n_iter: int = 3, grow: int = 1
) -> np.ndarray:
    """Target mask (row, col) bool: foreground probes near ``pred`` closer to the target class.

    Parameters
    ----------
    vectors : (row * col, n_bins) float, from :func:`bragg_vectors`
    fg : (row, col) bool particle foreground
    pred : (row, col) bool predicted target mask
    n_iter : int, 2-means iterations
    grow : int [px], how far the target may grow beyond ``pred``
    """
    near = ndi.binary_dilation(pred, iterations=grow) & fg
    target = pred & fg
    if not target.any():
        return target
    v = vectors.reshape(*fg.shape, -1)
    for _ in range(n_iter):
        other = fg & ~ndi.binary_dilation(target)
        if not other.any():
            break
        t_c = v[target].mean(axis=0)
        o_c = v[other].mean(axis=0)
        t_c /= max(np.linalg.norm(t_c), 1e-9)
        o_c /= max(np.linalg.norm(o_c), 1e-9)
        new = near & ((v @ t_c) > (v @ o_c))
        if not new.any():
            break
        lab, n = ndi.label(new)
        if n > 1:  # keep the component overlapping the prediction most
            overlap = ndi.sum(pred, lab, index=np.arange(1, n + 1))
            new = lab == 1 + int(np.argmax(overlap))
        if np.array_equal(new, target):
            break
        target = new
    return target
