"""Transition matrix between Mo + vacancy configurations, corrected for misclassification.

Pooled counts ``C_obs[a, b]`` of observed labels in consecutive frames of the same track
(pooled, not per-trajectory normalised). With a per-frame confusion ``M[k, a] = P(label a |
true k)`` and errors independent from frame to frame, ``E[C_obs] = M^T C M`` (the matrix method
of misclassification correction: B. A. Barron, Biometrics 33, 414 (1977)). The classifier's
errors are not independent along a track: a complex keeps its geometry (and its neighbours)
between switches, so a wrong label tends to repeat. Measured on seven dose-20 movies (seeds
0-6, classes from image crops around the network's Mo detections): after a wrong label, the
next frame of an unchanged object is wrong 32, 26, 36 and 19 % of the time for static Mo,
Mo-V_S, Mo-V_S2 and Mo-2V_S, against per-frame error rates of 15, 13, 3 and 16 % (pooled
``rho`` 0.18, 0.15, 0.41, 0.04). The observation model used here keeps that memory: while the
true state ``k`` stays, the label of the previous frame is kept with probability ``rho_k`` and
otherwise re-drawn from ``M[k]``; a switch re-draws it (the vacancies re-arrange). So

    P(a, b | k -> l) = M[k, a] M[l, b]                               (k != l)
    P(a, b | k -> k) = M[k, a] (rho_k [a == b] + (1 - rho_k) M[k, b])

(a Markov latent-class model with correlated classification errors, cf. Biemer & Bushery,
Surv. Methodol. 26, 139 (2000)), which keeps ``M[k]`` as the marginal of every frame; ``rho = 0``
is the independent-error matrix method. The hidden states are the static Mo substitution (never
switches) and the complex configurations, the labels those plus "other" (a Mo object put in a
vacancy class); the true pair counts are the non-negative least-squares solution of
``C_obs = sum_kl C[k, l] P(., . | k -> l)``, and the corrected matrix is the complex block of
``C`` normalised by rows.

``M`` and ``rho`` are measured from objects matched to ground truth, per track, so the bootstrap
over tracks (Efron & Tibshirani, An Introduction to the Bootstrap, 1993,
doi:10.1201/9780429246593) resamples the counts and the observation model together: the
interval carries the uncertainty of the measured confusion, correlated along tracks as it is.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import nnls

__all__ = [
    "pair_model",
    "observation_model",
    "correct_pair_counts",
    "normalise",
    "nan_quantiles",
    "transition_analysis",
]


def normalise(counts: np.ndarray) -> np.ndarray:
    """Row-normalised transition matrix (NaN rows where nothing was counted)."""
    s = counts.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s > 0, counts / np.where(s > 0, s, 1), np.nan)


def pair_model(m: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Probability of a label pair given a true state pair.

    Parameters
    ----------
    m : (K, O) float
        ``P(label a | true k)``, rows summing to 1.
    rho : (K,) float in [0, 1)
        Probability that an unchanged object keeps its previous frame's label.

    Returns
    -------
    (K, K, O, O) float
        ``P(a, b | k -> l)``; every ``[k, l]`` slice sums to 1.
    """
    out = m[:, None, :, None] * m[None, :, None, :]
    k = np.arange(len(m))
    out[k, k] = m[:, :, None] * (
        rho[:, None, None] * np.eye(m.shape[1])[None] + (1 - rho[:, None, None]) * m[:, None, :]
    )
    return out


def observation_model(
    label_counts: np.ndarray, same_pairs: np.ndarray, kept_pairs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Confusion ``M`` and label memory ``rho`` from truth-matched counts.

    Parameters
    ----------
    label_counts : (K, O) float
        Objects of true state ``k`` labelled ``a``.
    same_pairs : (K,) float
        Consecutive-frame pairs of one true object in the same true state ``k``.
    kept_pairs : (K,) float
        Of those, pairs with the same label in both frames.

    Returns
    -------
    m : (K, O) float
        Row-normalised confusion (NaN rows for states never seen).
    rho : (K,) float
        ``(P(same) - sum_a M[k, a]^2) / (1 - sum_a M[k, a]^2)`` clipped to [0, 0.99]; 0 where
        there are no pairs or the labels are never wrong.
    """
    m = normalise(label_counts)
    s_ind = np.nansum(m**2, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_same = kept_pairs / same_pairs
        rho = (p_same - s_ind) / (1 - s_ind)
    return m, np.clip(np.nan_to_num(rho, nan=0.0, posinf=0.0, neginf=0.0), 0.0, 0.99)


def correct_pair_counts(
    obs_counts: np.ndarray, m: np.ndarray, rho: np.ndarray, allowed: np.ndarray
) -> np.ndarray:
    """True pair counts from observed label-pair counts (non-negative least squares).

    Parameters
    ----------
    obs_counts : (O, O) float
        Observed label pairs in consecutive frames.
    m, rho : see :func:`pair_model`
        States with a NaN row of ``m`` (never calibrated) get no counts.
    allowed : (K, K) bool
        True state pairs that can occur (structural zeros elsewhere, e.g. a static Mo never
        becomes a complex).

    Returns
    -------
    (K, K) float
        Estimated true pair counts.
    """
    ok = np.isfinite(m).all(1)
    use = allowed & ok[:, None] & ok[None, :]
    kk, ll = np.nonzero(use)
    out = np.zeros(allowed.shape)
    if len(kk) == 0:
        return out
    design = pair_model(np.nan_to_num(m), rho)[kk, ll].reshape(len(kk), -1).T
    x, _ = nnls(design, obs_counts.ravel().astype(float))
    out[kk, ll] = x
    return out


def nan_quantiles(samples: np.ndarray, q: list[float]) -> np.ndarray:
    """NaN-ignoring quantiles over axis 0; all-NaN entries (never observed) stay NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(samples, q, axis=0)


def _per_track(track, frame, label, true, n_states, n_labels):
    """Per-track sufficient statistics: label pairs, truth-label counts, same-state pairs."""
    tracks = np.unique(track)
    idx = np.searchsorted(tracks, track)
    order = np.lexsort((frame, idx))
    t, f, a, k = idx[order], frame[order], label[order], true[order]
    nt = len(tracks)
    pairs = np.zeros((nt, n_labels, n_labels))
    lab = np.zeros((nt, n_states, n_labels))
    same = np.zeros((nt, n_states))
    kept = np.zeros((nt, n_states))
    nxt = (t[1:] == t[:-1]) & (f[1:] - f[:-1] == 1)
    np.add.at(pairs, (t[:-1][nxt], a[:-1][nxt], a[1:][nxt]), 1)
    known = k >= 0
    np.add.at(lab, (t[known], k[known], a[known]), 1)
    st = nxt & (k[:-1] >= 0) & (k[:-1] == k[1:])
    np.add.at(same, (t[:-1][st], k[:-1][st]), 1)
    np.add.at(kept, (t[:-1][st], k[:-1][st]), (a[:-1] == a[1:])[st])
    return pairs, lab, same, kept


def transition_analysis(
    track: np.ndarray,
    frame: np.ndarray,
    label: np.ndarray,
    true: np.ndarray | None,
    n_configs: int,
    *,
    n_boot: int,
    confidence: float,
    rng: np.random.Generator,
    memory: bool = True,
) -> dict[str, np.ndarray]:
    """Uncorrected and corrected transition matrices with bootstrap intervals over tracks.

    Parameters
    ----------
    track, frame : (n,) int
        Track id and frame of every Mo-family object.
    label : (n,) int
        Observed label: 0 static Mo, ``1..n_configs`` the configurations, ``n_configs + 1``
        anything else.
    true : (n,) int or None
        True state (0 static Mo, ``1..n_configs``; -1 unknown); None or all -1: no correction.
    n_configs : int
        Number of complex configurations.
    n_boot : int
        Bootstrap resamples of the tracks.
    confidence : float
        Interval level.
    memory : bool
        Model label memory along tracks (``rho``); False: independent errors (``rho = 0``).

    Returns
    -------
    dict
        ``counts (n_configs, n_configs)`` observed configuration pairs; ``uncorrected``,
        ``corrected`` and their ``*_lo``/``*_hi`` bounds (NaN where not estimable);
        ``confusion (K, O)`` and ``rho (K,)`` of the observation model (K = n_configs + 1,
        O = n_configs + 2), absent without truth.
    """
    n_states, n_labels = n_configs + 1, n_configs + 2
    cfg = slice(1, n_configs + 1)
    true = np.full(len(track), -1) if true is None else np.asarray(true)
    true = np.where((true >= 0) & (true < n_states), true, -1)
    pairs, lab, same, kept = _per_track(
        np.asarray(track), np.asarray(frame), np.asarray(label), true, n_states, n_labels
    )
    allowed = np.zeros((n_states, n_states), bool)
    allowed[0, 0] = True
    allowed[cfg, cfg] = True
    calibrated = lab.sum() > 0

    def estimate(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        c_obs = np.tensordot(w, pairs, 1)
        p_unc = normalise(c_obs[cfg, cfg])
        if not calibrated:
            return p_unc, np.full_like(p_unc, np.nan), None, None
        m, rho = observation_model(
            np.tensordot(w, lab, 1), np.tensordot(w, same, 1), np.tensordot(w, kept, 1)
        )
        if not memory:
            rho = np.zeros_like(rho)
        if not np.isfinite(m[cfg]).all():  # a configuration never matched to truth
            return p_unc, np.full_like(p_unc, np.nan), m, rho
        return p_unc, normalise(correct_pair_counts(c_obs, m, rho, allowed)[cfg, cfg]), m, rho

    nt = len(pairs)
    p_unc, p_cor, m, rho = estimate(np.ones(nt))
    alpha = (1 - confidence) / 2
    boots = [
        estimate(np.bincount(rng.integers(nt, size=nt), minlength=nt).astype(float))[:2]
        for _ in range(n_boot if nt else 0)
    ]
    out = {"counts": pairs.sum(0)[cfg, cfg], "uncorrected": p_unc, "corrected": p_cor}
    for j, name in enumerate(("uncorrected", "corrected")):
        q = (
            nan_quantiles(np.array([b[j] for b in boots]), [alpha, 1 - alpha])
            if boots
            else np.full((2, n_configs, n_configs), np.nan)
        )
        out[f"{name}_lo"], out[f"{name}_hi"] = q[0], q[1]
    if m is not None:
        out["confusion"], out["rho"] = m, rho
    return out
