"""Stage ``kinetics``: S-vacancy diffusion and complex transition matrix, with bootstrap intervals.

Diffusion of free single S vacancies (2-D: ``<dr^2> = 4 D dt``):

- hop counting: displacements between consecutive observations snapped to the S sublattice,
  ``|di a1 + dj a2|^2 = a^2 (di^2 + dj^2 + di dj)``, pooled: ``D = sum dr^2 / (4 sum dt)``;
  lattice snapping removes the localisation error;
- MSD: pooled mean squared displacement at lags 1..max_lag frames, fitted by weighted least
  squares to ``MSD = 4 D t + 4 sigma^2`` (localisation offset; few short lags are optimal:
  Michalet, Phys. Rev. E 82, 041914 (2010), doi:10.1103/PhysRevE.82.041914).

Transitions between Mo + vacancy configurations: counts ``C[k, l]`` of consecutive-frame pairs
pooled over all tracks (pooled counts, not per-trajectory normalised matrices), ``P = C / row
sums``. Misclassification with confusion ``M[k, o] = P(observed o | true k)`` gives
``E[C_obs] = M^T C M``, so the corrected counts are ``M^-T C_obs M^-1`` (negative entries
clipped) before normalising. Intervals: percentile bootstrap over tracks.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from scopeflow.defects.lattice import A_WS2, COMPLEX_NAMES, MO, V_S
from scopeflow.defects.options import KineticsOptions

__all__ = [
    "hop_sq",
    "msd_pooled",
    "fit_msd",
    "transition_counts",
    "correct_counts",
    "normalise",
    "kinetics_stage",
]


def hop_sq(di: np.ndarray, dj: np.ndarray, a: float = A_WS2) -> np.ndarray:
    """Squared length of lattice displacements ``di a1 + dj a2`` (60-degree basis) [a^2 unit]."""
    return a**2 * (di**2 + dj**2 + di * dj)


def _by_track(track: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(track, kind="stable")
    t = track[order]
    cuts = np.flatnonzero(np.diff(t)) + 1
    return [g for g in np.split(order, cuts) if len(g)]


def hop_estimate(groups, frame, si, sj) -> tuple[float, float]:
    """Pooled (sum dr^2, sum dt) over consecutive observations of each track."""
    num = den = 0.0
    for g in groups:
        g = g[np.argsort(frame[g])]
        dt = np.diff(frame[g])
        num += hop_sq(np.diff(si[g]), np.diff(sj[g])).sum()
        den += dt.sum()
    return num, den


def msd_pooled(groups, frame, pos, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Pooled MSD and pair counts at lags 1..max_lag frames (exact lags only)."""
    s = np.zeros(max_lag)
    n = np.zeros(max_lag)
    for g in groups:
        f = frame[g]
        p = pos[g]
        lookup = {int(x): k for k, x in enumerate(f)}
        for lag in range(1, max_lag + 1):
            k2 = [lookup.get(int(x) + lag, -1) for x in f]
            k2 = np.asarray(k2)
            ok = k2 >= 0
            if ok.any():
                d = p[k2[ok]] - p[ok]
                s[lag - 1] += (d**2).sum()
                n[lag - 1] += ok.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan), n


def fit_msd(msd: np.ndarray, count: np.ndarray) -> tuple[float, float]:
    """Weighted LSQ of ``MSD(t) = 4 D t + c`` over lags t = 1..len(msd); returns (D, c)."""
    t = np.arange(1, len(msd) + 1, dtype=float)
    ok = np.isfinite(msd) & (count > 0)
    if ok.sum() < 2:
        return float("nan"), float("nan")
    w = np.sqrt(count[ok])
    a = np.column_stack([4 * t[ok], np.ones(ok.sum())]) * w[:, None]
    coef, *_ = np.linalg.lstsq(a, msd[ok] * w, rcond=None)
    return float(coef[0]), float(coef[1])


def transition_counts(groups, frame, state, n_states: int) -> np.ndarray:
    """Pooled counts of state pairs in consecutive frames of the same track."""
    c = np.zeros((n_states, n_states))
    for g in groups:
        g = g[np.argsort(frame[g])]
        ok = (np.diff(frame[g]) == 1) & (state[g][:-1] >= 0) & (state[g][1:] >= 0)
        np.add.at(c, (state[g][:-1][ok], state[g][1:][ok]), 1)
    return c


def correct_counts(counts: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """Undo misclassification: ``M^-T C M^-1`` with ``M`` row-normalised, negatives clipped.

    The pseudo-inverse is used so that a confusion matrix with a never-assigned class still
    gives an answer (that class then carries no information and its counts stay zero).
    """
    m = confusion / np.maximum(confusion.sum(1, keepdims=True), 1e-12)
    minv = np.linalg.pinv(m)
    return np.clip(minv.T @ counts @ minv, 0.0, None)


def normalise(counts: np.ndarray) -> np.ndarray:
    """Row-normalised transition matrix (NaN rows where nothing was counted)."""
    s = counts.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s > 0, counts / np.where(s > 0, s, 1), np.nan)


def _states(tracks: xr.Dataset) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """Configuration state of every object (-1 if none) and the confusion among states."""
    det = tracks["detected_class"].values
    cls = tracks["class"].values
    mo = det == MO
    if (cls[mo] >= 0).any():  # clusters named from truth: configurations are classes 1..3
        state = np.where(mo & (cls >= 1) & (cls <= 3), cls - 1, -1)
        conf = None
        if "confusion" in tracks:
            conf = tracks["confusion"].values[1:4, 1:4].astype(float)
        return state.astype(np.int64), list(COMPLEX_NAMES), conf
    clusters = np.unique(tracks["cluster"].values[mo])
    lut = {c: k for k, c in enumerate(clusters)}
    state = np.array(
        [lut.get(c, -1) if m else -1 for c, m in zip(tracks["cluster"].values, mo, strict=True)]
    )
    return state.astype(np.int64), [f"cluster_{c}" for c in clusters], None


def _quantiles(samples: np.ndarray, q: list[float]) -> np.ndarray:
    """NaN-ignoring quantiles over axis 0; all-NaN entries (never observed) stay NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(samples, q, axis=0)


def kinetics_stage(inputs: list[xr.Dataset], opts: KineticsOptions) -> xr.Dataset:
    """Stage ``kinetics``: a ``defects.kinetics`` store.

    Returns
    -------
    xarray.Dataset
        ``msd (lag)`` [Å^2] and ``msd_pairs (lag)``; ``transition_counts``,
        ``transition_uncorrected``, ``transition_corrected`` (and ``*_lo``/``*_hi`` bootstrap
        bounds) over ``(from_state, to_state)``; attrs ``diffusion`` (D by hop counting and by
        MSD in Å^2/frame, Å^2/s and Å^2 per e/Å^2, each with its interval, the localisation
        offset) and ``n_tracks_used``.
    """
    (tr,) = inputs
    tr = tr.load()
    ft = float(tr.attrs["frame_time"])
    edose = tr.attrs.get("electron_dose")
    frame = tr["frame"].values.astype(np.int64)
    track = tr["track"].values
    rng = np.random.default_rng(opts.seed)
    alpha = (1 - opts.confidence) / 2
    # --- diffusion of free single S vacancies
    vs = np.flatnonzero((tr["detected_class"].values == V_S) & (track >= 0))
    groups = [vs[g] for g in _by_track(track[vs])]
    groups = [g for g in groups if len(g) >= opts.min_track]
    si, sj = tr["site_i"].values.astype(float), tr["site_j"].values.astype(float)
    pos = np.stack([tr["row_A"].values, tr["col_A"].values], 1)

    def diffusion(gs):
        num, den = hop_estimate(gs, frame, si, sj)
        msd, cnt = msd_pooled(gs, frame, pos, opts.max_lag)
        d_msd, off = fit_msd(msd, cnt)
        return num / max(4 * den, 1e-12), d_msd, off, msd, cnt

    d_hop, d_msd, offset, msd, cnt = diffusion(groups)
    boots = (
        np.array(
            [
                diffusion([groups[k] for k in rng.integers(len(groups), size=len(groups))])[:2]
                for _ in range(opts.n_boot)
            ]
        )
        if groups
        else np.full((1, 2), np.nan)
    )
    lo, hi = _quantiles(boots, [alpha, 1 - alpha])
    diff = {}
    for name, val, k in (("hop", d_hop, 0), ("msd", d_msd, 1)):
        per_frame = {"value": val, "lo": float(lo[k]), "hi": float(hi[k])}
        diff[name] = {
            "A2_per_frame": per_frame,
            "A2_per_s": {key: v / ft for key, v in per_frame.items()},
            "A2_per_e_per_A2": (
                {key: v / float(edose) for key, v in per_frame.items()} if edose else None
            ),
        }
    diff["msd_offset_A2"] = offset
    diff["localisation_rms_A"] = float(np.sqrt(max(offset, 0.0) / 4))
    # --- transitions between complex configurations (Mo-centred tracks)
    state, names, conf = _states(tr)
    ns = len(names)
    mo = np.flatnonzero((state >= 0) & (track >= 0))
    mgroups = [mo[g] for g in _by_track(track[mo])]
    counts = transition_counts(mgroups, frame, state, ns)
    p_unc = normalise(counts)
    usable = conf is not None and conf.shape == (ns, ns) and np.all(conf.sum(1) > 0)
    p_cor = normalise(correct_counts(counts, conf)) if usable else np.full((ns, ns), np.nan)
    bu, bc = [], []
    for _ in range(opts.n_boot if mgroups else 0):
        gs = [mgroups[k] for k in rng.integers(len(mgroups), size=len(mgroups))]
        c = transition_counts(gs, frame, state, ns)
        bu.append(normalise(c))
        if usable:
            bc.append(normalise(correct_counts(c, conf)))
    dims = ("from_state", "to_state")
    out = xr.Dataset(
        coords={
            "lag": ("lag", np.arange(1, opts.max_lag + 1) * ft, {"units": "s"}),
            "from_state": ("from_state", np.arange(ns), {"units": "1", "names": names}),
            "to_state": ("to_state", np.arange(ns), {"units": "1", "names": names}),
        }
    )
    out["msd"] = ("lag", msd, {"units": "Å^2"})
    out["msd_pairs"] = ("lag", cnt, {"units": "count"})
    out["transition_counts"] = (dims, counts, {"units": "count"})
    for name, p, b in (("uncorrected", p_unc, bu), ("corrected", p_cor, bc)):
        out[f"transition_{name}"] = (dims, p, {"units": "1/frame"})
        q = _quantiles(np.array(b), [alpha, 1 - alpha]) if b else np.full((2, ns, ns), np.nan)
        out[f"transition_{name}_lo"] = (dims, q[0], {"units": "1/frame"})
        out[f"transition_{name}_hi"] = (dims, q[1], {"units": "1/frame"})
    if usable:
        out["confusion_used"] = (dims, conf, {"units": "count"})
    out.attrs.update(
        diffusion=diff,
        n_tracks_used={"V_S": len(groups), "complex": len(mgroups)},
        confidence=opts.confidence,
        frame_time=ft,
        electron_dose=edose,
        pixel_size=tr.attrs.get("pixel_size"),
    )
    return out
