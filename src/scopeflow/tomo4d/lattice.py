"""Lattice finding and refinement from 3D reciprocal-space spots.

- DPS indexing (difference-vector / FFT): Steller, Bolotovsky & Rossmann, J. Appl. Cryst. 30,
  1036 (1997), doi:10.1107/S0021889897008777. Spots projected on a grid of directions ``t``:
  if ``d t`` is a real-lattice vector every projection ``g.t`` is a multiple of ``1/d``, so the
  FFT of the projection histogram peaks at ``d``. The strongest directions give candidate
  vectors, refined by least squares on their integer projections; the smallest-volume
  non-coplanar triple that indexes most spots is the cell.
- Reduction to the shortest (Buerger) basis, least-squares refinement of the reciprocal basis
  ``G = H B`` and of the tilt-axis direction (minimum residual).
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = [
    "hemisphere",
    "dps_candidates",
    "refine_vector",
    "choose_basis",
    "refine_basis",
    "reduce_basis",
    "remove_supercell",
    "restore_weak",
    "refine_merged",
    "index_spots",
]


def hemisphere(step_deg: float) -> np.ndarray:
    """Unit vectors (n, 3) on the upper hemisphere (Fibonacci lattice) spaced ~``step_deg``."""
    n = max(int(2 * np.pi / np.deg2rad(step_deg) ** 2), 16)
    i = np.arange(n) + 0.5
    z = 1.0 - i / n
    phi = np.pi * (1 + 5**0.5) * i
    rho = np.sqrt(1 - z**2)
    return np.column_stack([rho * np.cos(phi), rho * np.sin(phi), z])


def refine_vector(g: np.ndarray, w: np.ndarray, r: np.ndarray, tol: float, n_iter: int = 6):
    """Least-squares real vector ``r`` [Å] with ``g.r`` near integers.

    Returns ``(r, f)``: the vector and the weight fraction ``f`` of the spots it indexes.
    """
    frac = 0.0
    for _ in range(n_iter):
        x = g @ r
        n = np.round(x)
        inl = np.abs(x - n) < tol
        frac = float(w[inl].sum() / w.sum())
        if inl.sum() < 4:
            break
        r = np.linalg.lstsq(g[inl], n[inl], rcond=None)[0]
    return r, frac


def dps_candidates(
    g: np.ndarray, w: np.ndarray, d_range: tuple[float, float], step_deg: float, n_keep: int = 40
) -> list[np.ndarray]:
    """Candidate real-lattice vectors (list of (3,) [Å]) from the DPS direction search.

    Spots are weighted by ``w`` (their intensity), so the particle dominating the summed frames
    (the tracked target) dominates the periodicities over weaker neighbours.
    """
    d_min, d_max = d_range
    delta = 1.0 / (4.0 * d_max)
    p_max = float(np.max(np.linalg.norm(g, axis=1))) + delta
    n_bin = int(np.ceil(2 * p_max / delta))
    n_fft = int(2 ** np.ceil(np.log2(4 * n_bin)))
    d_of = np.arange(n_fft // 2 + 1) / (n_fft * delta)
    band = (d_of >= d_min) & (d_of <= d_max)
    dirs = hemisphere(step_deg)
    best = np.zeros(len(dirs))
    best_d = np.zeros(len(dirs))
    for s in range(0, len(dirs), 512):
        t = dirs[s : s + 512]
        b = np.floor((g @ t.T + p_max) / delta).astype(np.int64)  # (n_g, n_t)
        flat = b + n_bin * np.arange(len(t))[None, :]
        wt = np.broadcast_to(w[:, None], flat.shape).ravel()
        hist = np.bincount(flat.ravel(), wt, minlength=n_bin * len(t)).reshape(len(t), n_bin)
        mag = np.abs(np.fft.rfft(hist - hist.mean(axis=1, keepdims=True), n=n_fft, axis=1))
        mag[:, ~band] = 0.0
        top = mag.max(axis=1)
        # fundamental: the shortest d whose peak reaches 60 % of the strongest harmonic
        first = np.argmax(mag >= 0.6 * top[:, None], axis=1)
        best[s : s + 512] = top
        best_d[s : s + 512] = d_of[first]
    order = np.argsort(best)[::-1]
    kept: list[np.ndarray] = []
    for k in order:
        if len(kept) >= n_keep:
            break
        if all(abs(dirs[k] @ (v / np.linalg.norm(v))) < np.cos(np.deg2rad(4)) for v in kept):
            kept.append(dirs[k] * best_d[k])
    return kept


def _frac_indexed(g: np.ndarray, w: np.ndarray, basis: np.ndarray, tol: float) -> float:
    x = g @ basis.T
    return float(w[np.all(np.abs(x - np.round(x)) < tol, axis=1)].sum() / w.sum())


def choose_basis(
    g: np.ndarray, w: np.ndarray, candidates: list[np.ndarray], tol: float, d_min: float = 1.0
) -> np.ndarray:
    """Smallest-volume non-coplanar triple of refined candidates indexing most weight (3, 3) [Å]."""
    refined = []
    for c in candidates:
        r, frac = refine_vector(g, w, c, tol)
        if frac > 0.3 and np.linalg.norm(r) > 0.9 * d_min:
            refined.append((np.linalg.norm(r), r, frac))
    if len(refined) < 3:
        raise ValueError(f"DPS found only {len(refined)} lattice vectors (need 3)")
    refined.sort(key=lambda x: x[0])
    vecs = [r for _, r, _ in refined[:14]]
    trials = []
    for a, b, c in itertools.combinations(vecs, 3):
        basis = np.array([a, b, c])
        vol = abs(np.linalg.det(basis))
        lens = np.linalg.norm(basis, axis=1)
        if vol < 0.2 * np.prod(lens):  # nearly coplanar
            continue
        ones = np.ones(len(g))
        trials.append(
            (_frac_indexed(g, w, basis, tol), _frac_indexed(g, ones, basis, tol), vol, basis)
        )
    if not trials:
        raise ValueError("no non-coplanar triple of lattice vectors found")
    # a supercell indexes every spot of the cell plus chance coincidences, a sublattice of the
    # strong reflections (pseudo-centring) misses the weak ones: among the triples within 15 % of
    # the best indexed weight, keep those indexing >= 90 % as many spots as the best of them,
    # then take the smallest volume
    top = max(t[0] for t in trials)
    near = [t for t in trials if t[0] >= 0.85 * top]
    top_n = max(t[1] for t in near)
    return min((t for t in near if t[1] >= 0.9 * top_n), key=lambda t: t[2])[3]


def refine_basis(g: np.ndarray, basis: np.ndarray, tol: float, n_iter: int = 4):
    """Least-squares refinement ``G = H B`` of a real basis (3, 3) [Å].

    Returns
    -------
    basis : (3, 3) float [Å], hkl : (n, 3) int, inlier : (n,) bool
    """
    for _ in range(n_iter):
        x = g @ basis.T
        hkl = np.round(x)
        inl = np.all(np.abs(x - hkl) < tol, axis=1) & np.any(hkl != 0, axis=1)
        if inl.sum() < 6 or np.linalg.matrix_rank(hkl[inl]) < 3:
            break
        recip = np.linalg.lstsq(hkl[inl], g[inl], rcond=None)[0]
        basis = np.linalg.inv(recip).T
    if not np.all(np.isfinite(basis)):
        raise ValueError("cell refinement diverged")
    x = g @ basis.T
    hkl = np.round(x).astype(int)
    inl = np.all(np.abs(x - hkl) < tol, axis=1) & np.any(hkl != 0, axis=1)
    return basis, hkl, inl


def reduce_basis(basis: np.ndarray) -> np.ndarray:
    """Shortest non-coplanar basis (Buerger cell) of the lattice, right-handed (3, 3) [Å]."""
    n = np.array(list(itertools.product(range(-2, 3), repeat=3)))
    n = n[np.any(n != 0, axis=1)]
    vecs = n @ basis
    order = np.argsort(np.linalg.norm(vecs, axis=1))
    vol = abs(np.linalg.det(basis))
    chosen: list[np.ndarray] = []
    for k in order:
        v = vecs[k]
        if len(chosen) == 0:
            chosen.append(v)
        elif len(chosen) == 1:
            if np.linalg.norm(np.cross(chosen[0], v)) > 1e-3 * np.linalg.norm(v) ** 2:
                chosen.append(v)
        elif abs(abs(np.linalg.det(np.array([*chosen, v]))) - vol) < 1e-3 * vol:
            chosen.append(v)
            break
    if len(chosen) < 3:
        return np.asarray(basis, float)
    out = np.array(chosen)
    if np.linalg.det(out) < 0:
        out[2] = -out[2]
    return out


def remove_supercell(
    g: np.ndarray, w: np.ndarray, basis: np.ndarray, tol: float, d_min: float, n_iter: int = 3
):
    """Halve a supercell basis (3, 3) [Å] while the data allow it.

    A basis spanning a supercell of the true lattice (e.g. ``b + c, b - c``) indexes every spot,
    so the indexed fraction cannot tell it from the cell. The test is on the half vectors
    ``r = (n . B) / 2``, ``n`` in {0, 1}^3: ``r`` is a lattice vector when ``g . r`` is an
    integer for (nearly) every indexed spot, by count and by intensity. For the true cell half of
    the general reflections give half-integers; a systematic absence only affects a zone, which
    the tilt series never fills. Weak spots of a neighbour or noise, indexed by chance, dilute
    the count but not the intensity: the thresholds are 80 % of the indexed spots and 90 % of
    their intensity. What tells a supercell from a pseudo-centred cell (brookite's reflections
    with one index parity are weak) is how the odd spots fit: chance coincidences spread over
    the tolerance (median residual ~0.1), real reflections fit as well as the others, so ``r``
    is rejected when the odd spots' median residual is below twice that of the even ones.
    Vectors shorter than ``d_min`` [Å] are not tried (``g . r`` rounds to 0 for any short
    ``r``). ``r`` replaces a basis vector it contains (the volume halves), then the basis is
    reduced.
    """
    for _ in range(n_iter):
        x = g @ basis.T
        inl = np.all(np.abs(x - np.round(x)) < tol, axis=1) & np.any(np.round(x) != 0, axis=1)
        if inl.sum() < 12:
            break
        gi, wi = g[inl], w[inl]
        resid = np.abs(x - np.round(x)).max(axis=1)[inl]
        best = None
        for n in itertools.product((0, 1), repeat=3):
            if not any(n):
                continue
            r = np.asarray(n, float) @ basis / 2.0
            if np.linalg.norm(r) < d_min:
                continue
            y = gi @ r
            ok = np.abs(y - np.round(y)) < tol
            frac_n, frac_w = float(ok.mean()), float(wi[ok].sum() / wi.sum())
            score = min(frac_n / 0.8, frac_w / 0.9)
            if (~ok).sum() >= 3 and np.median(resid[~ok]) < 2.0 * np.median(resid[ok]):
                continue  # the odd spots fit the basis as well: real weak (pseudo-centring)
            if score >= 1.0 and (best is None or score > best[0]):
                best = (score, n, r)
        if best is None:
            break
        _, n, r = best
        new = np.array(basis, float)
        new[n.index(1)] = r
        new, _, _ = refine_basis(g, reduce_basis(new), tol)
        if np.linalg.norm(new, axis=1).min() < d_min:
            break
        basis = new
    return basis


def restore_weak(g: np.ndarray, basis: np.ndarray, tol: float, n_iter: int = 3) -> np.ndarray:
    """Double a subcell basis (3, 3) [Å] whose finer reciprocal lattice holds real reflections.

    The converse of :func:`remove_supercell`: DPS can lock on the strong reflections of a
    pseudo-translation (CsPbBr3: h, k, l all even) and miss the weak ones. Each reciprocal half
    vector ``(n . B*) / 2`` is tried as a lattice vector (the real cell doubles); it is kept when
    the spots it newly indexes are many (>= 10 % of the indexed ones, at least 6) and fit as
    well as the indexed ones (median residual below twice theirs), as real reflections do,
    whereas chance coincidences spread over the tolerance.
    """
    for _ in range(n_iter):
        x = g @ basis.T
        inl = np.all(np.abs(x - np.round(x)) < tol, axis=1) & np.any(np.round(x) != 0, axis=1)
        if inl.sum() < 12:
            break
        base_res = float(np.median(np.abs(x - np.round(x)).max(axis=1)[inl]))
        recip = np.linalg.inv(basis).T
        best = None
        for n in itertools.product((0, 1), repeat=3):
            if not any(n):
                continue
            new_recip = np.array(recip)
            new_recip[n.index(1)] = np.asarray(n, float) @ recip / 2.0
            new = np.linalg.inv(new_recip).T
            y = g @ new.T
            res = np.abs(y - np.round(y)).max(axis=1)
            gained = (res < tol) & ~inl & np.any(np.round(y) != 0, axis=1)
            n_new = int(gained.sum())
            if n_new < max(6, 0.1 * inl.sum()):
                continue
            if np.median(res[gained]) < 2.0 * base_res and (best is None or n_new > best[0]):
                best = (n_new, new)
        if best is None:
            break
        basis, _, _ = refine_basis(g, reduce_basis(best[1]), tol)
    return basis


def refine_merged(
    g: np.ndarray, w: np.ndarray, basis: np.ndarray, hkl: np.ndarray, inlier: np.ndarray
) -> np.ndarray:
    """Real basis (3, 3) [Å] fitted to each reflection's rocking-curve centroid.

    A reflection is seen on several consecutive tilts while its lattice point crosses the Ewald
    sphere; the inversion puts each partial observation on the sphere, off the lattice point by
    its excitation error along the beam (up to the rocking width ~1/T, several times the
    centroid error of a spot). The intensity-weighted mean of a reflection's observations is the
    rocking-curve centroid, where the excitation error averages out (the curve is symmetric
    in ``s``), so ``G = H B*`` is fitted on one centroid per ``hkl`` (Friedel mates apart),
    rows weighted by the square root of the reflection's counts (the centroid's standard
    deviation falls as 1/sqrt(counts)).

    Parameters
    ----------
    g : (n, 3) float [1/Å] specimen-frame spots
    w : (n,) float [counts] spot intensities
    basis : (3, 3) float [Å], hkl : (n, 3) int, inlier : (n,) bool, from :func:`refine_basis`;
        ``basis`` is returned unchanged when the centroids do not span 3D (too few reflections).
    """
    w = np.clip(np.asarray(w, float)[inlier], 1e-9, None)
    uniq, inv = np.unique(hkl[inlier], axis=0, return_inverse=True)
    inv = inv.ravel()
    total = np.bincount(inv, weights=w)
    centroid = (
        np.stack([np.bincount(inv, weights=w * g[inlier, k]) for k in range(3)], axis=1)
        / total[:, None]
    )
    sw = np.sqrt(total)[:, None]
    if len(uniq) < 6 or np.linalg.matrix_rank(uniq) < 3:
        return np.asarray(basis, float)
    recip = np.linalg.lstsq(uniq * sw, centroid * sw, rcond=None)[0]
    return np.linalg.inv(recip).T


def index_spots(g: np.ndarray, w: np.ndarray, d_range, step_deg: float, tol: float):
    """DPS -> basis -> reduce -> refine. Returns (basis (3, 3) [Å], hkl (n, 3), inlier (n,)).

    ``g`` (n, 3) [1/Å] specimen-frame spots, ``w`` (n,) their weights (intensities).
    """
    w = np.clip(np.asarray(w, float), 1e-9, None)
    cands = dps_candidates(g, w, d_range, step_deg)
    basis = choose_basis(g, w, cands, tol, d_range[0])
    basis, _, _ = refine_basis(g, basis, tol)
    basis = remove_supercell(g, w, reduce_basis(basis), tol, d_range[0])
    basis = restore_weak(g, reduce_basis(basis), tol)
    return refine_basis(g, reduce_basis(basis), tol)
