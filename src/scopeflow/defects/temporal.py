"""Temporal combination of the network's single-S-vacancy evidence on the S lattice sites.

One frame does not carry enough information for a single S vacancy at dose 20 (an oracle matched
filter at the true column positions reaches F1 0.93), but a vacancy stays on its site between
hops. Every S site (indexed through the per-frame lattice fit, so drift is followed) is a
two-state hidden Markov chain (0: no single vacancy, 1: single vacancy) observed once per frame.
The emission is the network's vacancy probability ``q`` read at the site, turned into a
likelihood ratio by dividing out the prior odds it was calibrated under,
``L = odds(q) / odds(pi_net)`` with ``pi_net`` the mean of ``q`` over all observations (for a
calibrated classifier the mean posterior is the prior). The switching probabilities (appearance
``p01``, disappearance by a hop ``p10``) are estimated from the movie by expectation
maximisation over the transitions only (Baum-Welch, Rabiner, Proc. IEEE 77, 257 (1989),
doi:10.1109/5.18626), and the forward-backward posterior of state 1 gives the detections
(posterior above a threshold). A site outside a frame is a missing observation (``L = 1``).

Hops couple the chains: a vacancy that leaves its site lands on one of its six S neighbours
(:func:`fit_switching`). Measured on the dose-20 acceptance movie (512^2, 40 frames, jitter
0.5 px): single-S-vacancy F1 0.925 per frame (network blobs), 0.959 with independent chains,
0.964 with hop-coupled chains (0.964 on a validation movie, seed 7); those numbers are from an
earlier network: the current default network gives 0.899 per frame and 0.952 combined on the
acceptance movie (bench/defects). The thresholded posteriors lose some one-frame stays, so hop
kinetics from this table are biased low (D -17 %) and the kinetics stage uses the per-frame
table.

The fitted leaving probability is not a D estimate either. On four acceptance-settings movies it
is 0.23-0.27 per frame against 0.30-0.34 of the free vacancies' frames that end on another
site, because the chains also hold the vacancies bound in Mo complexes, which move only when
their complex switches. Leaving out the S sites next to detected Mo brings it to 0.29-0.32
(D 1-8 % below the realised value), but the fit depends on the calibration of the
probabilities: with oracle evidence (0.99 at true vacancies, 0.01 elsewhere) it is 14 % low.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from scopeflow.defects.lattice import V_S

__all__ = ["site_evidence", "forward_backward", "neighbours", "fit_switching", "combine_sites"]

#: probabilities are clipped to [EPS, 1 - EPS]: one confidently wrong frame cannot outvote
#: several frames (a likelihood ratio of at most ~1e3)
EPS = 1e-3


def site_evidence(
    prob: np.ndarray, vectors: np.ndarray, origin: np.ndarray, veto: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Single-vacancy probability at every S site inside one frame.

    Parameters
    ----------
    prob : (N_CLASSES, row, col) float
        Network probabilities on the 2x2-binned grid.
    vectors : (2, 2) float
        Lattice vectors ``a1, a2`` of the frame [full-resolution px].
    origin : (2,) float
        A metal site of the frame (unwrapped across frames) [full-resolution px].
    veto : (k, 2) int, optional
        Cell indices of S sites that the frame's detections call a double vacancy. The two
        classes exclude each other, so their single-vacancy probability is set to 0: a double
        vacancy's partial single-vacancy probability, summed over frames, would otherwise
        become a persistent false single vacancy (mean temporal V_S F1 over eight
        acceptance-settings movies, seeds 0-7: 0.9514 -> 0.9535; higher on 7 of them).

    Returns
    -------
    ij : (m, 2) int64
        Cell indices of the S sites (``origin + (i + 1/3) a1 + (j + 1/3) a2``) more than one
        binned pixel inside the frame.
    q : (m,) float32
        Vacancy probability at the site (bilinear on the binned grid).
    """
    ny, nx = prob.shape[1:]
    corners = np.array([[0, 0], [0, 2 * nx], [2 * ny, 0], [2 * ny, 2 * nx]], float) - origin
    frac = np.linalg.solve(vectors.T, corners.T).T
    lo, hi = np.floor(frac.min(0)).astype(int) - 1, np.ceil(frac.max(0)).astype(int) + 1
    ii, jj = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    ij = np.stack([ii.ravel(), jj.ravel()], 1)
    pos = (ij + 1.0 / 3.0) @ vectors + origin
    b = (pos - 0.5) / 2.0  # binned px
    ok = (b[:, 0] >= 1) & (b[:, 0] <= ny - 2) & (b[:, 1] >= 1) & (b[:, 1] <= nx - 2)
    ij, b = ij[ok], b[ok]
    q = ndimage.map_coordinates(prob[V_S], [b[:, 0], b[:, 1]], order=1, mode="nearest")
    if veto is not None and len(veto):
        key = ij[:, 0] * (1 << 32) + ij[:, 1]
        veto = np.asarray(veto, np.int64)
        q[np.isin(key, veto[:, 0] * (1 << 32) + veto[:, 1])] = 0.0
    return ij.astype(np.int64), q.astype(np.float32)


def forward_backward(lr: np.ndarray, p01: np.ndarray | float, p10: float) -> dict[str, np.ndarray]:
    """Posterior of a two-state Markov chain per site (scaled forward-backward).

    Parameters
    ----------
    lr : (frame, site) float
        Likelihood ratio state 1 / state 0 of each observation (1 where missing).
    p01 : float or (frame, site) float
        Probability of 0 -> 1 between frames ``t - 1`` and ``t`` (entry ``t``; entry 0 sets the
        initial state through the stationary distribution).
    p10 : float
        Per-frame probability of 1 -> 0.

    Returns
    -------
    dict
        ``gamma`` (frame, site): posterior of state 1; ``xi01`` (frame, site): expected
        0 -> 1 transitions into frame ``t``; ``n0``, ``n10``, ``n1``: expected occupancies of
        state 0 and 1 before a transition and expected 1 -> 0 transitions (summed).
    """
    nf, m = lr.shape
    p01 = np.broadcast_to(np.asarray(p01, np.float64), (nf, m))
    alpha = np.empty((nf, m, 2))
    first = p01[min(1, nf - 1)] / (p01[min(1, nf - 1)] + p10)
    x = np.stack([1 - first, first * lr[0]], -1)
    alpha[0] = x / x.sum(-1, keepdims=True)
    for t in range(1, nf):
        a0, a1, u = alpha[t - 1, :, 0], alpha[t - 1, :, 1], p01[t]
        x = np.stack([a0 * (1 - u) + a1 * p10, (a0 * u + a1 * (1 - p10)) * lr[t]], -1)
        alpha[t] = x / x.sum(-1, keepdims=True)
    beta = np.ones((nf, m, 2))
    xi01 = np.zeros((nf, m))
    n0 = n10 = n1 = 0.0
    for t in range(nf - 2, -1, -1):
        u = p01[t + 1]
        y0, y1 = beta[t + 1, :, 0], beta[t + 1, :, 1] * lr[t + 1]
        a0, a1 = alpha[t, :, 0], alpha[t, :, 1]
        pairs = np.stack([a0 * (1 - u) * y0, a0 * u * y1, a1 * p10 * y0, a1 * (1 - p10) * y1])
        pairs /= pairs.sum(0)
        xi01[t + 1] = pairs[1]
        n0 += float(pairs[0].sum() + pairs[1].sum())
        n10 += float(pairs[2].sum())
        n1 += float(pairs[2].sum() + pairs[3].sum())
        z = np.stack([(1 - u) * y0 + u * y1, p10 * y0 + (1 - p10) * y1], -1)
        beta[t] = z / z.sum(-1, keepdims=True)
    g = alpha * beta
    return {"gamma": g[..., 1] / g.sum(-1), "xi01": xi01, "n0": n0, "n10": n10, "n1": n1}


def neighbours(sites: np.ndarray) -> np.ndarray:
    """Indices of the six nearest S sites of every S site (-1 where not in ``sites``).

    Parameters
    ----------
    sites : (m, 2) int
        Unique S-site cell indices (60-degree basis: neighbours at ``+-a1, +-a2, +-(a2 - a1)``).

    Returns
    -------
    (m, 6) int64
    """
    steps = np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [-1, 1], [1, -1]])
    lo = sites.min(0) - 1
    span = sites.max(0) - lo + 2
    key = (sites[:, 0] - lo[0]) * span[1] + (sites[:, 1] - lo[1])
    order = np.argsort(key)
    nb = sites[:, None, :] + steps[None]
    nkey = (nb[..., 0] - lo[0]) * span[1] + (nb[..., 1] - lo[1])
    pos = np.clip(np.searchsorted(key[order], nkey), 0, len(key) - 1)
    found = key[order][pos] == nkey
    return np.where(found, order[pos], -1)


def fit_switching(
    lr: np.ndarray, nb: np.ndarray, iterations: int = 10
) -> tuple[np.ndarray, float, float]:
    """Hop-coupled chains: switching probabilities by expectation maximisation (fixed emissions).

    A vacancy leaving its site (probability ``p10`` per frame) hops to one of the six
    neighbouring S sites, so a site next to a likely vacancy at ``t - 1`` becomes one with
    probability ``1 - (1 - p_birth) prod_n (1 - p10 gamma_n(t - 1) / 6)`` (mean field: the
    neighbours' posteriors of the previous iteration); ``p_birth`` covers vacancies created or
    coming from outside. Independent chains would treat every hop as a rare appearance and erase
    short stays, biasing the diffusion coefficient low.

    Parameters
    ----------
    lr : (frame, site) float
        Likelihood ratios (1 where missing).
    nb : (site, 6) int
        :func:`neighbours`.
    iterations : int
        EM iterations (the first one is the uncoupled chain); 10 changes the single-vacancy F1
        of the acceptance movie by < 0.001 from 40.

    Returns
    -------
    gamma : (frame, site) float64
        Posterior of a single vacancy.
    p_birth, p10 : float
        Per-frame birth and leaving probabilities.
    """
    p_birth, p10 = 0.01, 0.3
    gamma = np.zeros_like(lr)
    has = nb >= 0
    for _ in range(iterations):
        gn = np.where(has[None], gamma[:, np.maximum(nb, 0)], 0.0)  # (frame, site, 6)
        stay = np.prod(1 - p10 * gn / 6.0, -1)
        p01 = np.ones_like(lr) * p_birth
        p01[1:] = 1 - (1 - p_birth) * stay[:-1]
        fb = forward_backward(lr, p01, p10)
        gamma = fb["gamma"]
        share = p_birth / p01  # responsibility of a birth for an appearance
        p_birth = float(np.clip((fb["xi01"] * share).sum() / max(fb["n0"], 1e-12), 1e-6, 0.5))
        p10 = float(np.clip(fb["n10"] / max(fb["n1"], 1e-12), 1e-3, 0.95))
    return gamma, p_birth, p10


def combine_sites(
    frames: np.ndarray, ij: np.ndarray, q: np.ndarray, n_frames: int, threshold: float = 0.7
) -> dict[str, np.ndarray | float]:
    """Temporally combined single-vacancy states of every S site seen in the movie.

    Parameters
    ----------
    frames : (n,) int
        Frame of each observation.
    ij : (n, 2) int
        S-site cell indices of each observation.
    q : (n,) float
        Network vacancy probability of each observation (:func:`site_evidence`).
    n_frames : int
    threshold : float
        Smallest posterior of a detection. Above 1/2 because the network's probabilities are
        over-confident (clipped or not, a product of them over-counts the evidence); 0.7 gave
        the best F1 on a validation movie (seed 7), not on the benchmark movie.

    Returns
    -------
    dict
        ``frame, site_i, site_j`` (k,) of the observations whose posterior exceeds ``threshold``,
        ``score`` (k,) that posterior, and the fitted ``p_birth``, ``p10`` and ``prior``.
    """
    if len(q) == 0:
        e = np.zeros(0, np.int64)
        return dict(frame=e, site_i=e, site_j=e, score=np.zeros(0), p_birth=0.0, p10=0.0, prior=0.0)
    # unique sites through one int64 key per (i, j) (row-major, so the same order as
    # ``np.unique(ij, axis=0)``, which sorts a structured view ~10x slower)
    ij = np.asarray(ij, np.int64)
    lo = ij.min(0)
    span = int(ij[:, 1].max() - lo[1]) + 1
    keys, inv = np.unique((ij[:, 0] - lo[0]) * span + (ij[:, 1] - lo[1]), return_inverse=True)
    sites = np.stack([keys // span + lo[0], keys % span + lo[1]], 1)
    inv = inv.ravel()
    qc = np.clip(q.astype(np.float64), EPS, 1 - EPS)
    prior = float(np.clip(qc.mean(), EPS, 1 - EPS))
    lr = np.ones((n_frames, len(sites)))
    lr[frames, inv] = (qc / (1 - qc)) / (prior / (1 - prior))
    gamma, p01, p10 = fit_switching(lr, neighbours(sites))
    post = gamma[frames, inv]
    keep = post > threshold
    return dict(
        frame=np.asarray(frames)[keep],
        site_i=sites[inv[keep], 0],
        site_j=sites[inv[keep], 1],
        score=post[keep],
        p_birth=p01,
        p10=p10,
        prior=prior,
    )
