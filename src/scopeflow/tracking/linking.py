"""One-to-one frame-to-frame linking with gap closing (linear assignment).

The two-step linear-assignment framework of Jaqaman et al., Nat. Methods 5, 695 (2008),
doi:10.1038/nmeth.1237: (1) consecutive frames are linked by solving one augmented assignment
problem per frame pair (``scipy.optimize.linear_sum_assignment``), whose extra rows/columns let
any object end (death) or start (birth) at a fixed cost; (2) the resulting segments are joined
across up to ``max_gap`` missing frames by a second assignment between segment ends and later
segment starts. Costs are squared displacements; a link longer than the search range (scaled by
``sqrt(frames apart)`` for gaps, the diffusive growth) is forbidden.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

__all__ = ["link", "track_purity"]

_FORBID = 1e12


def _assign(a: np.ndarray, b: np.ndarray, radius: float | np.ndarray) -> list[tuple[int, int]]:
    """Augmented LAP between point sets ``a`` (n, 2) and ``b`` (m, 2); returns linked pairs."""
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return []
    rmax = float(np.max(radius))
    pairs = cKDTree(a).sparse_distance_matrix(cKDTree(b), rmax, output_type="ndarray")
    if len(pairs) == 0:
        return []
    r_i = np.broadcast_to(np.asarray(radius, float), (n,))[pairs["i"]]
    ok = pairs["v"] <= r_i
    pi, pj, pv = pairs["i"][ok], pairs["j"][ok], pairs["v"][ok]
    if len(pi) == 0:
        return []
    # non-link cost: just above the most expensive allowed link, so links are preferred
    alt = 1.05 * float(np.max(np.broadcast_to(np.asarray(radius, float), (n,))) ** 2) + 1e-9
    cost = np.full((n + m, m + n), _FORBID)
    cost[pi, pj] = pv**2
    cost[np.arange(n), m + np.arange(n)] = alt  # death
    cost[n + np.arange(m), np.arange(m)] = alt  # birth
    cost[n + pj, m + pi] = pv**2  # auxiliary block: transpose of the allowed links
    rows, cols = linear_sum_assignment(cost)
    sel = (rows < n) & (cols < m)
    return [(int(r), int(c)) for r, c in zip(rows[sel], cols[sel], strict=True)]


def link(frame: np.ndarray, pos: np.ndarray, search_range: float, max_gap: int = 0) -> np.ndarray:
    """Link detections into tracks.

    Parameters
    ----------
    frame : (n,) int
        Frame index of each detection.
    pos : (n, d) float
        Positions (any length unit L, drift-corrected).
    search_range : float
        Largest displacement between consecutive frames [L].
    max_gap : int
        Largest number of missing frames bridged by gap closing.

    Returns
    -------
    (n,) int64
        Track id of each detection (0..n_tracks-1); a track holds at most one detection per
        frame.
    """
    frame = np.asarray(frame)
    pos = np.asarray(pos, float).reshape(len(frame), -1)
    n = len(frame)
    nxt = np.full(n, -1, np.int64)
    prev = np.full(n, -1, np.int64)
    frames = np.unique(frame)
    index = {f: np.flatnonzero(frame == f) for f in frames}
    for f in frames:
        if f + 1 not in index:
            continue
        a, b = index[f], index[f + 1]
        for i, j in _assign(pos[a], pos[b], search_range):
            nxt[a[i]], prev[b[j]] = b[j], a[i]
    if max_gap > 0:
        ends = np.flatnonzero(nxt < 0)
        starts = np.flatnonzero(prev < 0)
        # each end may join a start 2..max_gap+1 frames later; the diffusive range grows
        # with sqrt(frames apart). One assignment over all candidate pairs.
        cand = []
        for ie, e in enumerate(ends):
            dt = frame[starts] - frame[e]
            ok = (dt >= 2) & (dt <= max_gap + 1)
            if not ok.any():
                continue
            d = np.linalg.norm(pos[starts[ok]] - pos[e], axis=1)
            rad = search_range * np.sqrt(dt[ok])
            for js, dd in zip(np.flatnonzero(ok)[d <= rad], d[d <= rad], strict=True):
                cand.append((ie, js, dd, search_range * np.sqrt(max_gap + 1)))
        if cand:
            ne, ns = len(ends), len(starts)
            rmax = cand[0][3]
            alt = 1.05 * rmax**2
            cost = np.full((ne + ns, ns + ne), _FORBID)
            for ie, js, dd, _ in cand:
                cost[ie, js] = dd**2
                cost[ne + js, ns + ie] = dd**2
            cost[np.arange(ne), ns + np.arange(ne)] = alt
            cost[ne + np.arange(ns), np.arange(ns)] = alt
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if r < ne and c < ns and cost[r, c] < _FORBID:
                    nxt[ends[r]], prev[starts[c]] = starts[c], ends[r]
    track = np.full(n, -1, np.int64)
    tid = 0
    for s in np.flatnonzero(prev < 0):
        k = s
        while k >= 0:
            track[k] = tid
            k = nxt[k]
        tid += 1
    return track


def track_purity(track: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of linked detections that belong to their track's majority true identity.

    Parameters
    ----------
    track : (n,) int
        Reconstructed track ids.
    truth : (n,) int
        True identities (detections without a true identity, < 0, are ignored).

    Returns
    -------
    float
        ``sum_tracks max_identity count / sum_tracks count`` over detections with a true
        identity; 1 for a perfect (possibly fragmented) linking.
    """
    ok = np.asarray(truth) >= 0
    t, g = np.asarray(track)[ok], np.asarray(truth)[ok]
    if len(t) == 0:
        return float("nan")
    good = 0
    order = np.lexsort((g, t))
    t, g = t[order], g[order]
    for tid in np.unique(t):
        sel = g[t == tid]
        good += np.bincount(sel - sel.min()).max()
    return good / len(t)
