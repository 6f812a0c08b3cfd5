"""Scores of detections against simulated truth (one-to-one matching within a radius)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

__all__ = ["match_points", "prf"]


def match_points(
    det: np.ndarray, truth: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Optimal one-to-one matching of two point sets within ``radius``.

    Parameters
    ----------
    det, truth : (n, 2), (m, 2) float
        Positions [px].
    radius : float
        Largest matched distance [px].

    Returns
    -------
    i_det, i_truth : (k,) int64
        Matched index pairs (minimum total distance, ``scipy.optimize.linear_sum_assignment``).
    """
    if len(det) == 0 or len(truth) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = cKDTree(det).sparse_distance_matrix(cKDTree(truth), radius, output_type="ndarray")
    if len(pairs) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    di, dinv = np.unique(pairs["i"], return_inverse=True)
    ti, tinv = np.unique(pairs["j"], return_inverse=True)
    big = 1e6
    cost = np.full((len(di), len(ti)), big)
    cost[dinv, tinv] = pairs["v"]
    r, c = linear_sum_assignment(cost)
    ok = cost[r, c] < big
    return di[r[ok]].astype(np.int64), ti[c[ok]].astype(np.int64)


def prf(tp: int, n_det: int, n_true: int) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts (1.0 when there is nothing to find or claim)."""
    p = tp / n_det if n_det else 1.0
    r = tp / n_true if n_true else 1.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f
