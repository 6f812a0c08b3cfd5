"""Temporal combination of single-S-vacancy evidence: hop-coupled two-state chains per site."""

import numpy as np

from scopeflow.defects.lattice import CLASS_NAMES, V_S, lattice_vectors
from scopeflow.defects.temporal import (
    combine_sites,
    forward_backward,
    neighbours,
    site_evidence,
)

STEPS = np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [-1, 1], [1, -1]])


def _walkers(rng, n_side=30, n_walk=25, n_frames=40, p_hop=0.4):
    """Vacancies hopping with probability p_hop per frame to one of the six S neighbours."""
    pos = rng.integers(3, n_side - 3, (n_walk, 2))
    occ = np.zeros((n_frames, n_side, n_side), bool)
    for t in range(n_frames):
        if t:
            hop = rng.random(n_walk) < p_hop
            new = pos + STEPS[rng.integers(0, 6, n_walk)] * hop[:, None]
            ok = (new >= 0).all(1) & (new < n_side).all(1)
            pos = np.where(ok[:, None], new, pos)
        occ[t, pos[:, 0], pos[:, 1]] = True
    return occ


def _evidence(rng, occ, sep):
    """Network-like probabilities: logit q ~ N(+-sep, 2) around a prior of 3 % vacancies."""
    z = np.where(occ, sep, -sep) + rng.normal(0, 2.0, occ.shape) + np.log(0.03 / 0.97)
    return 1 / (1 + np.exp(-z))


def test_neighbours_of_a_patch():
    sites = np.array([[0, 0], [1, 0], [0, 1], [-1, 1], [5, 5]])
    nb = neighbours(sites)
    assert set(nb[0][nb[0] >= 0]) == {1, 2, 3}
    assert (nb[4] == -1).all()
    assert 0 in nb[1] and 0 in nb[3]


def test_forward_backward_is_the_exact_posterior_of_a_short_chain():
    # two frames, one site: enumerate the four paths by hand
    lr = np.array([[3.0], [0.5]])
    p01, p10 = 0.2, 0.4
    start1 = p01 / (p01 + p10)
    w = {
        (0, 0): (1 - start1) * (1 - p01),
        (0, 1): (1 - start1) * p01 * 0.5,
        (1, 0): start1 * 3.0 * p10,
        (1, 1): start1 * 3.0 * (1 - p10) * 0.5,
    }
    z = sum(w.values())
    fb = forward_backward(lr, p01, p10)
    assert np.isclose(fb["gamma"][0, 0], (w[1, 0] + w[1, 1]) / z)
    assert np.isclose(fb["gamma"][1, 0], (w[0, 1] + w[1, 1]) / z)
    assert np.isclose(fb["xi01"][1, 0], w[0, 1] / z)


def _f1(est, occ):
    tp = (est & occ).sum()
    return 2 * tp / (est.sum() + occ.sum())


def test_hopping_vacancies_are_found_better_than_frame_by_frame():
    rng = np.random.default_rng(3)
    occ = _walkers(rng)
    q = _evidence(rng, occ, sep=2.5)
    nf, ny, nx = occ.shape
    ii, jj = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    ij = np.tile(np.stack([ii.ravel(), jj.ravel()], 1), (nf, 1))
    frames = np.repeat(np.arange(nf), ny * nx)
    res = combine_sites(frames, ij, q.ravel(), nf, threshold=0.5)
    est = np.zeros_like(occ)
    est[res["frame"], res["site_i"], res["site_j"]] = True
    f1_frame = _f1(q > 0.5, occ)
    f1_comb = _f1(est, occ)
    # each vacancy stays 1 / 0.4 = 2.5 frames on average and its hops land on a neighbour the
    # coupled chains expect: pooling ~2.5 frames of evidence must clearly beat one frame
    assert f1_comb > f1_frame + 0.05, (f1_frame, f1_comb)
    # the leaving probability is estimated from the movie; with ~1000 vacancy-frames the
    # statistical error is ~0.02, the remaining smoothing bias is bounded by 0.1 here
    assert abs(res["p10"] - 0.4) < 0.1, res["p10"]
    # births: none were simulated (all walkers exist from frame 0)
    assert res["p_birth"] < 0.01


def test_no_evidence_no_detections():
    rng = np.random.default_rng(0)
    frames = np.repeat(np.arange(10), 50)
    ij = np.tile(np.stack([np.arange(50), np.zeros(50, int)], 1), (10, 1))
    q = np.full(500, 1e-4) * rng.random(500)
    res = combine_sites(frames, ij, q, 10)
    assert len(res["frame"]) == 0
    empty = combine_sites(np.zeros(0, int), np.zeros((0, 2), int), np.zeros(0), 5)
    assert len(empty["frame"]) == 0


def test_a_double_vacancy_does_not_become_a_single_one():
    # A double vacancy shows a partial single-vacancy probability (here 0.3) on its site in every
    # frame: summed over 40 frames against a 3 % prior that is a confident, persistent single
    # vacancy. Vetoed by the frame's double-vacancy detection, the site holds none, while a
    # true vacancy elsewhere is still found.
    vec = lattice_vectors(16.0, 0.1)  # full-resolution px
    origin = np.array([60.0, 60.0])
    n_frames, dbl, vac = 40, np.array([[1, 2]]), np.array([[3, 0]])
    frames, ijs, qs, vetoed = [], [], [], []
    for t in range(n_frames):
        prob = np.zeros((len(CLASS_NAMES), 100, 100), np.float32)
        prob[V_S] = 0.03
        for cell, level in ((dbl[0], 0.3), (vac[0], 0.95)):
            r, c = ((cell + 1 / 3) @ vec + origin - 0.5) / 2  # binned px
            prob[V_S, round(r) - 1 : round(r) + 2, round(c) - 1 : round(c) + 2] = level
        for veto, out in ((None, qs), (dbl, vetoed)):
            ij, q = site_evidence(prob, vec, origin, veto)
            out.append(q)
        frames.append(np.full(len(q), t))
        ijs.append(ij)
    frames, ijs = np.concatenate(frames), np.concatenate(ijs)
    for q, expect_dbl in ((np.concatenate(qs), True), (np.concatenate(vetoed), False)):
        res = combine_sites(frames, ijs, q, n_frames)
        found = {(i, j) for i, j in zip(res["site_i"], res["site_j"], strict=True)}
        assert (tuple(dbl[0]) in found) == expect_dbl
        assert tuple(vac[0]) in found


def test_windows_agree_with_one_fit(monkeypatch):
    import scopeflow.defects.detect as detect

    rng = np.random.default_rng(5)
    occ = _walkers(rng, n_frames=48)
    q = _evidence(rng, occ, sep=2.5)
    nf, ny, nx = occ.shape
    ii, jj = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    ij = np.stack([ii.ravel(), jj.ravel()], 1)
    vecs, origins = np.tile(np.eye(2) * 10.0, (nf, 1, 1)), np.zeros((nf, 2))

    def run(window, pad, chunk):
        monkeypatch.setattr(detect, "TEMPORAL_WINDOW", window)
        monkeypatch.setattr(detect, "TEMPORAL_PAD", pad)
        table = {k: [] for k in detect.TABLE_FIELDS}
        evidence, first, fits = {}, 0, []
        for stop in range(chunk, nf + chunk, chunk):  # frames arrive chunk by chunk
            for f in range(stop - chunk, min(stop, nf)):
                evidence[f] = (ij, q[f].ravel())
            first = detect._temporal_windows(
                table, evidence, first, min(stop, nf), vecs, origins, 0.5, fits
            )
        assert first == nf
        assert min(evidence) >= nf - window - pad  # old evidence was dropped
        f = np.concatenate(table["frame"])
        return {
            (a, b, c)
            for a, b, c in zip(
                f, np.concatenate(table["site_i"]), np.concatenate(table["site_j"]), strict=True
            )
        }, fits

    whole, fits1 = run(64, 16, 48)
    parts, fits4 = run(12, 8, 5)
    assert len(fits1) == 1 and len(fits4) == 4
    # 8 frames of context at a leaving probability ~0.3 per frame change an edge posterior by
    # ~0.7**8 ~ 6 %, and each 28-frame fit estimates its switching rates from ~600 vacancy-frames
    # (~10 % relative error): only borderline decisions may change, a few % of them
    assert len(whole ^ parts) <= 0.05 * len(whole), (len(whole), len(whole ^ parts))
