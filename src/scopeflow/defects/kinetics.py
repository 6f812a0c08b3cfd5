"""Stage ``kinetics``: S-vacancy diffusion and complex transition matrix, with bootstrap intervals.

Diffusion of free single S vacancies (2-D: ``<dr^2> = 4 D dt``):

- hop counting: displacements between consecutive observations snapped to the S sublattice,
  ``|di a1 + dj a2|^2 = a^2 (di^2 + dj^2 + di dj)``; lattice snapping removes the localisation
  error. The reported estimate (``hop``) is robust to wrong links (a missed detection lets the
  linker join a neighbouring vacancy or a false positive, a displacement that is no hop): the
  lattice shells of the links (0, a, sqrt(3) a, 2 a, ... within the search range) are fitted by
  maximum likelihood to a mixture of the shell distribution of a lattice walk with Poisson(k dt)
  nearest-neighbour hops and a fraction ``eps`` of wrong links spread evenly over the lattice
  sites in range; ``D = k a^2 / 4`` per frame. Wrong links show as the excess at sqrt(3) a and
  2 a, where true double hops are rare (k ~ 0.4/frame), so ``k`` and ``eps`` separate (a
  contamination model in the sense of Huber, Robust Statistics, 1981). ``hop_pooled`` is the
  plain ``sum dr^2 / (4 sum dt)``, whose wrong links bias it (up by ~+20 % on the benchmark
  movie with a per-frame recall of 0.9);
- MSD: pooled mean squared displacement at lags 1..max_lag frames, fitted by weighted least
  squares to ``MSD = 4 D t + 4 sigma^2`` (localisation offset; few short lags are optimal:
  Michalet, Phys. Rev. E 82, 041914 (2010), doi:10.1103/PhysRevE.82.041914). It knows nothing
  of the search range: steps longer than the range end a track, so the MSD is biased low by
  their share of ``<dr^2>`` (at the default 6 Å the collinear double hops, ~11 % at 0.4
  hops/frame).

Transitions between Mo + vacancy configurations: counts ``C[k, l]`` of consecutive-frame pairs
pooled over all tracks (pooled counts, not per-trajectory normalised matrices), ``P = C / row
sums``; the correction for misclassification (with a confusion that has memory along a track,
measured from objects matched to ground truth) is :mod:`scopeflow.defects.transitions`.
Intervals: percentile bootstrap over tracks (for the corrected matrix the confusion is
re-measured in every resample).
"""

from __future__ import annotations

import functools

import numpy as np
import xarray as xr

from scopeflow.defects.lattice import A_WS2, COMPLEX_NAMES, MO, V_S, hop_sq
from scopeflow.defects.options import KineticsOptions, TrackOptions
from scopeflow.defects.transitions import nan_quantiles, transition_analysis

__all__ = [
    "hop_sq",
    "hop_mixture",
    "msd_pooled",
    "fit_msd",
    "kinetics_stage",
]


def _by_track(track: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(track, kind="stable")
    t = track[order]
    cuts = np.flatnonzero(np.diff(t)) + 1
    return [g for g in np.split(order, cuts) if len(g)]


def hop_estimate(groups, frame, si, sj) -> tuple[float, float]:
    """Pooled (sum dr^2 [Å^2], sum dt [frames]) over consecutive observations of each track."""
    d2, dt = link_displacements(groups, frame, si, sj)
    return float(d2.sum()) * A_WS2**2, float(dt.sum())


def _shells(r_max: float, a: float) -> tuple[np.ndarray, np.ndarray]:
    """Lattice sites within ``r_max`` [Å]: (site -> shell index (n_sites,), shell |d|^2 / a^2)."""
    m = int(np.ceil(2 * r_max / a)) + 1
    di, dj = np.meshgrid(np.arange(-m, m + 1), np.arange(-m, m + 1), indexing="ij")
    s2 = (di**2 + dj**2 + di * dj).ravel()
    s2 = s2[s2 * a**2 <= r_max**2 + 1e-9]
    values, index = np.unique(s2, return_inverse=True)
    return index, values


@functools.lru_cache(maxsize=8)
def _hop_shell_table(sq: tuple[int, ...], n_max: int = 12) -> np.ndarray:
    """P(a walk of n nearest-neighbour hops on the triangular lattice ends on each shell of
    squared length ``sq`` [a^2]), (n_max + 1, n_shells); mass beyond the last shell dropped."""
    size = 2 * n_max + 1
    d = np.arange(size) - n_max
    di, dj = np.meshgrid(d, d, indexing="ij")
    s2 = di**2 + dj**2 + di * dj
    grid = np.zeros((size, size))
    grid[n_max, n_max] = 1.0
    out = np.zeros((n_max + 1, len(sq)))
    for n in range(n_max + 1):
        if n:
            grid = (
                np.roll(grid, 1, 0) + np.roll(grid, -1, 0) + np.roll(grid, 1, 1)
                + np.roll(grid, -1, 1) + np.roll(np.roll(grid, 1, 0), -1, 1)
                + np.roll(np.roll(grid, -1, 0), 1, 1)
            ) / 6.0  # fmt: skip
        out[n] = [grid[s2 == v].sum() for v in sq]
    return out


def hop_mixture(
    d2: np.ndarray, dt: np.ndarray, r_max: float, a: float = A_WS2
) -> tuple[float, float]:
    """Hop rate and wrong-link fraction from lattice displacements (module docstring).

    Parameters
    ----------
    d2 : (n,) float
        Squared lattice displacements of the links, ``di^2 + dj^2 + di dj`` [a^2].
    dt : (n,) int
        Frames between the linked observations.
    r_max : float
        Linking search range [Å] (links longer than it cannot exist).
    a : float
        Lattice constant [Å].

    Returns
    -------
    k : float
        Hops per frame (``D = k a^2 / 4`` [Å^2/frame]); nan without links.
    eps : float
        Fraction of wrong links.
    """
    from scipy.optimize import minimize

    index, sq = _shells(r_max, a)
    d2 = np.rint(np.asarray(d2, float)).astype(int)
    keep = np.isin(d2, sq)
    if not keep.any():
        return float("nan"), float("nan")
    n_sites = np.bincount(index, minlength=len(sq)).astype(float)
    uniform = np.where(sq > 0, n_sites, 0.0)
    uniform /= uniform.sum()
    dts, inv = np.unique(np.asarray(dt)[keep], return_inverse=True)
    counts = np.zeros((len(dts), len(sq)))
    np.add.at(counts, (inv, np.searchsorted(sq, d2[keep])), 1.0)

    table = _hop_shell_table(tuple(int(v) for v in sq))
    n = np.arange(len(table))
    log_fact = np.cumsum(np.log(np.maximum(n, 1)))

    def nll(x):
        k, eps = np.exp(x[0]), 1 / (1 + np.exp(-x[1]))
        out = 0.0
        for g, t in enumerate(dts):
            pois = np.exp(n * np.log(k * t) - k * t - log_fact)
            w = pois @ table
            p = (1 - eps) * w / w.sum() + eps * uniform
            out -= (counts[g] * np.log(np.maximum(p, 1e-300))).sum()
        return out

    mean_d2 = float((d2[keep] / np.asarray(dt)[keep]).mean())
    best = None
    for e0 in (-4.0, -1.5):  # start near no contamination and at ~20 %
        r = minimize(nll, [np.log(max(mean_d2, 1e-3)), e0], method="Nelder-Mead",
                     options={"xatol": 1e-5, "fatol": 1e-8, "maxiter": 2000})  # fmt: skip
        best = r if best is None or r.fun < best.fun else best
    return float(np.exp(best.x[0])), float(1 / (1 + np.exp(-best.x[1])))


def link_displacements(groups, frame, si, sj) -> tuple[np.ndarray, np.ndarray]:
    """Squared lattice displacements [a^2] and frame gaps of consecutive observations."""
    d2, dts = [], []
    for g in groups:
        g = g[np.argsort(frame[g])]
        d2.append(hop_sq(np.diff(si[g]), np.diff(sj[g]), a=1.0))
        dts.append(np.diff(frame[g]))
    if not d2:
        return np.zeros(0), np.zeros(0, int)
    return np.concatenate(d2), np.concatenate(dts)


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


def _states(tracks: xr.Dataset) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Observed label and true state of every Mo-family object.

    Returns
    -------
    label : (n,) int64
        -1 for objects outside the Mo family; 0 static Mo, ``1..K`` the configurations
        (:data:`~scopeflow.defects.lattice.COMPLEX_NAMES` when clusters are named from truth,
        else the Mo-family clusters), ``K + 1`` any other class.
    true : (n,) int64 or None
        Same codes from the matched ground truth (-1 unmatched); None without truth.
    names : list of str
        The K configuration names.
    """
    det = tracks["detected_class"].values
    cls = tracks["class"].values
    mo = det == MO
    n_cfg = len(COMPLEX_NAMES)
    if (cls[mo] >= 0).any():  # clusters named from truth: object codes 0 (Mo), 1..3 (complexes)
        label = np.where(mo, np.where((cls >= 0) & (cls <= n_cfg), cls, n_cfg + 1), -1)
        true = None
        if "true_class" in tracks:
            t = tracks["true_class"].values
            true = np.where(mo & (t >= 0) & (t <= n_cfg), t, -1)
        return label.astype(np.int64), true, list(COMPLEX_NAMES)
    clusters = np.unique(tracks["cluster"].values[mo])
    lut = {c: k + 1 for k, c in enumerate(clusters)}
    label = np.array(
        [lut[c] if m else -1 for c, m in zip(tracks["cluster"].values, mo, strict=True)]
    )
    return label.astype(np.int64), None, [f"cluster_{c}" for c in clusters]


def kinetics_stage(inputs: list[xr.Dataset], opts: KineticsOptions) -> xr.Dataset:
    """Stage ``kinetics``: a ``defects.kinetics`` store.

    Returns
    -------
    xarray.Dataset
        ``msd (lag)`` [Å^2] and ``msd_pairs (lag)``; ``transition_counts``,
        ``transition_uncorrected``, ``transition_corrected`` (and ``*_lo``/``*_hi`` bootstrap
        bounds) over ``(from_state, to_state)``; with ground truth also the observation model
        of the correction (:mod:`scopeflow.defects.transitions`): ``confusion_used (true_state,
        label)`` (P(label | true state); states static Mo and the configurations, labels those
        and "other") and ``label_memory (true_state)``; attrs ``diffusion`` (D by hop counting
        and by MSD in Å^2/frame, Å^2/s and Å^2 per e/Å^2, each with its interval, the
        localisation offset) and ``n_tracks_used``.
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

    r_max = float(tr.attrs.get("linking", {}).get("search_range_A", TrackOptions().search_range))

    def diffusion(gs):
        d2, dt = link_displacements(gs, frame, si, sj)
        rate, eps = hop_mixture(d2, dt, r_max)
        pooled = A_WS2**2 * d2.sum() / max(4 * dt.sum(), 1e-12)
        msd, cnt = msd_pooled(gs, frame, pos, opts.max_lag)
        d_msd, off = fit_msd(msd, cnt)
        return rate * A_WS2**2 / 4, d_msd, pooled, off, msd, cnt, eps

    d_hop, d_msd, d_pooled, offset, msd, cnt, eps = diffusion(groups)
    boots = (
        np.array(
            [
                diffusion([groups[k] for k in rng.integers(len(groups), size=len(groups))])[:3]
                for _ in range(opts.n_boot)
            ]
        )
        if groups
        else np.full((1, 3), np.nan)
    )
    lo, hi = nan_quantiles(boots, [alpha, 1 - alpha])
    diff = {}
    for name, val, k in (("hop", d_hop, 0), ("msd", d_msd, 1), ("hop_pooled", d_pooled, 2)):
        per_frame = {"value": val, "lo": float(lo[k]), "hi": float(hi[k])}
        diff[name] = {
            "A2_per_frame": per_frame,
            "A2_per_s": {key: v / ft for key, v in per_frame.items()},
            "A2_per_e_per_A2": (
                {key: v / float(edose) for key, v in per_frame.items()} if edose else None
            ),
        }
    diff["wrong_link_fraction"] = eps
    diff["msd_offset_A2"] = offset
    diff["localisation_rms_A"] = float(np.sqrt(max(offset, 0.0) / 4))
    # --- transitions between complex configurations (Mo-centred tracks)
    label, true, names = _states(tr)
    ns = len(names)
    mo = (label >= 0) & (track >= 0)
    res = transition_analysis(
        track[mo],
        frame[mo],
        label[mo],
        None if true is None else true[mo],
        ns,
        n_boot=opts.n_boot,
        confidence=opts.confidence,
        rng=rng,
    )
    n_complex_tracks = len(np.unique(track[mo & (label >= 1) & (label <= ns)]))
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
    out["transition_counts"] = (dims, res["counts"], {"units": "count"})
    for name in ("uncorrected", "corrected"):
        for suffix in ("", "_lo", "_hi"):
            out[f"transition_{name}{suffix}"] = (dims, res[name + suffix], {"units": "1/frame"})
    if "confusion" in res:
        out = out.assign_coords(
            true_state=("true_state", np.arange(ns + 1), {"units": "1", "names": ["Mo", *names]}),
            label=("label", np.arange(ns + 2), {"units": "1", "names": ["Mo", *names, "other"]}),
        )
        out["confusion_used"] = (("true_state", "label"), res["confusion"], {"units": "1"})
        out["label_memory"] = ("true_state", res["rho"], {"units": "1"})
    out.attrs.update(
        diffusion=diff,
        n_tracks_used={"V_S": len(groups), "complex": n_complex_tracks},
        confidence=opts.confidence,
        frame_time=ft,
        electron_dose=edose,
        pixel_size=tr.attrs.get("pixel_size"),
    )
    return out
