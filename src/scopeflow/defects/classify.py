"""Stage ``classify``: unsupervised classes of defect objects (GMM on canonical crops).

After Maksov et al., npj Comput. Mater. 5, 12 (2019), doi:10.1038/s41524-019-0152-9 (a GMM on
crops around detected defects), with two changes: crops are lattice-aligned and
symmetry-pooled, so symmetry-equivalent configurations fall into one class, and the number of
classes is chosen by BIC.

Objects: every Mo detection, with the S-vacancy detections within ``1.35 d_WS`` of it absorbed
(a Mo + vacancy complex), and every remaining vacancy detection. A crop is sampled at the
lattice sites around the object (the centre and up to three shells, 4/10/13 columns, lattice
coordinates with ``a1`` along +u) on the probe-smoothed frame — a matched-filter read-out of each
column, insensitive to the centring error that dominates a pixel crop — for each of the six
operations of the site symmetry 3m (three rotations by 120 deg, each with or without the mirror
through a metal-S bond); the operation whose nearest-neighbour columns read darkest first
(lexicographically) is kept: a canonical representative of the symmetry orbit. The
standardised canonical crops feed a full-covariance ``sklearn.mixture.GaussianMixture``. By
default only the first shell is used: the outer shells add noise dimensions that made BIC merge
configurations (complex accuracy 0.77 with 13 sites vs 0.85 with 4 on a dose-20 movie).
With ground truth in the movie, each cluster is named after the majority physical class of its
matched objects and the confusion matrix (rows true, columns assigned) is stored.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import xarray as xr
from scipy import ndimage
from scipy.spatial import cKDTree
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from scopeflow.defects.lattice import (
    A_WS2,
    DEFECT_CLASSES,
    MO,
    OBJECT_NAMES,
    TABLE_FIELDS,
    V_S,
    V_S2,
    d_ws,
)
from scopeflow.defects.options import ClassifyOptions
from scopeflow.defects.scoring import match_points

__all__ = ["build_objects", "smooth_patches", "canonical_crops", "classify_objects"]

log = logging.getLogger(__name__)


def build_objects(table: dict[str, np.ndarray], absorb_px: float) -> dict[str, np.ndarray]:
    """Group detections into objects (Mo + nearby S vacancies; other vacancies alone).

    Parameters
    ----------
    table : dict of (n,) arrays
        Detections (``frame, row, col, class, score, site_i, site_j, sublattice``).
    absorb_px : float
        S vacancies closer than this to a Mo detection of the same frame join it [px].

    Returns
    -------
    dict of (m,) arrays
        The centre detection's fields plus ``n_members`` (absorbed vacancies).
    """
    keep = np.ones(len(table["row"]), bool)
    members = np.zeros(len(table["row"]), np.int32)
    pos = np.stack([table["row"], table["col"]], 1)
    for f in np.unique(table["frame"]):
        inf = table["frame"] == f
        mo = np.flatnonzero(inf & (table["class"] == MO))
        vac = np.flatnonzero(inf & np.isin(table["class"], (V_S, V_S2)))
        if len(mo) == 0 or len(vac) == 0:
            continue
        d, k = cKDTree(pos[mo]).query(pos[vac], distance_upper_bound=absorb_px)
        hit = np.isfinite(d)
        keep[vac[hit]] = False
        np.add.at(members, mo[k[hit]], 1)
    out = {key: np.asarray(v)[keep] for key, v in table.items()}
    out["n_members"] = members[keep]
    return out


#: the six operations of 3m: rotation [deg] and whether the bond-line mirror comes first
_GROUP = [(k * 120.0, m) for k in range(3) for m in (False, True)]


def site_offsets(a_px: float, start_deg: float) -> np.ndarray:
    """Canonical sampling points: the centre and its first three shells of lattice sites.

    Parameters
    ----------
    a_px : float
        Lattice constant [px].
    start_deg : float
        Direction of the first-shell neighbours: 30 for a metal centre (S neighbours at
        30/150/270 deg from ``a1``), 90 for an S centre (metal neighbours at 90/210/330 deg).

    Returns
    -------
    (13, 2) float64
        (u, v) offsets [px], ``u`` along ``a1``: centre, 3 x d_WS, 6 x a, 3 x 2 d_WS.
    """
    dws = a_px / np.sqrt(3.0)
    shells = [(0.0, [0.0])]
    shells.append((dws, [start_deg + 120.0 * k for k in range(3)]))
    shells.append((a_px, [60.0 * k for k in range(6)]))
    shells.append((2 * dws, [start_deg + 60.0 + 120.0 * k for k in range(3)]))
    pts = [(r * np.cos(np.deg2rad(t)), r * np.sin(np.deg2rad(t))) for r, ts in shells for t in ts]
    return np.array(pts)


def smooth_patches(
    frame: np.ndarray, centres: np.ndarray, sigma_px: float, radius_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-smoothed square patches of a frame around points.

    The values equal those of ``ndimage.gaussian_filter(frame, sigma_px, truncate=3)`` (its
    ``reflect`` border included) on every patch pixel, at a fraction of the cost when the points
    are sparse: a 1024^2 frame with ~300 objects smooths ~0.3 M instead of 1 M pixels, without
    the slow full-frame filter (45 ms on this CPU).

    Parameters
    ----------
    frame : (row, col) float
    centres : (n, 2) float
        Patch centres [px].
    sigma_px : float
        Gaussian sigma [px].
    radius_px : float
        Patches cover at least this distance around each centre (plus one pixel for bilinear
        read-outs) [px].

    Returns
    -------
    patches : (n, 2 h + 1, 2 h + 1) float32
        Smoothed values; ``patches[k, i, j]`` is the smoothed frame at
        ``corners[k] + (i, j)``.
    corners : (n, 2) int64
        Frame pixel of each patch's ``[0, 0]``.
    """
    trunc = 3.0
    r = int(trunc * sigma_px + 0.5)  # ndimage's kernel radius
    h = int(np.ceil(radius_px)) + 1
    big = h + r
    pad = np.pad(np.asarray(frame, np.float32), big, mode="symmetric")  # = ndimage "reflect"
    c0 = np.rint(centres).astype(np.int64)
    c0[:, 0] = np.clip(c0[:, 0], 0, frame.shape[0] - 1)
    c0[:, 1] = np.clip(c0[:, 1], 0, frame.shape[1] - 1)
    off = np.arange(2 * big + 1)  # padded index c0 + off  <->  frame pixel c0 - big + off
    raw = pad[(c0[:, 0, None] + off)[:, :, None], (c0[:, 1, None] + off)[:, None, :]]
    sm = ndimage.gaussian_filter(raw, (0.0, sigma_px, sigma_px), truncate=trunc)
    return sm[:, r : r + 2 * h + 1, r : r + 2 * h + 1], c0 - h


def canonical_crops(
    smooth: np.ndarray,
    centres: np.ndarray,
    metal_centre: np.ndarray,
    angle: float,
    a_px: float,
    n_sites: int = 13,
    corners: np.ndarray | None = None,
) -> np.ndarray:
    """Lattice-aligned, symmetry-canonical crops of one frame, sampled on the lattice sites.

    Parameters
    ----------
    smooth : (row, col) float, or (n, p, p) float with ``corners``
        Probe-smoothed frame (a matched filter: its value at a site reads that column), or the
        smoothed patches of :func:`smooth_patches` around the ``n`` centres.
    centres : (n, 2) float
        Object centres [px].
    metal_centre : (n,) bool
        Centre on a metal site or on an S site.
    angle : float
        Direction of ``a1`` [rad] (from +col towards +row).
    a_px : float
        Lattice constant [px].
    n_sites : int
        Sample the first ``n_sites`` (4 to 13) of :func:`site_offsets` (4: the first shell,
        within ``a / sqrt(3)`` of the centre).
    corners : (n, 2) int, optional
        Frame pixel of each patch's origin (with patches).

    Returns
    -------
    (n, n_sites) float64
        Read-outs at :func:`site_offsets`, in the canonical orientation: of the six operations
        of 3m, the one putting the darkest first-shell column first (then the darker of the
        remaining two second) is kept.
    """
    best = np.zeros((len(centres), n_sites))
    best_key = np.full(len(centres), np.inf)
    for rot, mirror in _GROUP:
        phi = np.deg2rad(rot)
        for start in (30.0, 90.0):
            sel = metal_centre if start == 30.0 else ~metal_centre
            if not sel.any():
                continue
            p = site_offsets(a_px, start)[:n_sites]
            q = p
            if mirror:  # reflect through the bond line at 30 deg: phi -> 60 deg - phi
                c, s = np.cos(np.deg2rad(60.0)), np.sin(np.deg2rad(60.0))
                q = np.stack([c * p[:, 0] + s * p[:, 1], s * p[:, 0] - c * p[:, 1]], 1)
            cr, sr = np.cos(phi + angle), np.sin(phi + angle)
            col = cr * q[:, 0] - sr * q[:, 1]
            row = sr * q[:, 0] + cr * q[:, 1]
            rr = centres[sel, 0, None] + row[None, :]
            cc = centres[sel, 1, None] + col[None, :]
            if corners is None:
                coords = [rr.ravel(), cc.ravel()]
            else:  # patch k, at integer index k: linear interpolation there is exact
                k = np.broadcast_to(np.flatnonzero(sel)[:, None], rr.shape).astype(float)
                rr, cc = rr - corners[sel, 0, None], cc - corners[sel, 1, None]
                coords = [k.ravel(), rr.ravel(), cc.ravel()]
            crop = ndimage.map_coordinates(smooth, coords, order=1, mode="nearest").reshape(
                rr.shape
            )
            scale = np.abs(crop[:, 1:4]).max() + 1e-9
            key = crop[:, 1] * 1e3 / scale + crop[:, 2] / scale
            idx = np.flatnonzero(sel)
            better = key < best_key[idx]
            best[idx[better]] = crop[better]
            best_key[idx[better]] = key[better]
    return best


def _cluster_families(
    feats: np.ndarray, family: np.ndarray, opts: ClassifyOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GMM (components by BIC) on the standardised crops, separately per detected-class family.

    Returns cluster ids (unique over families), posterior of the chosen cluster, and the BIC
    table ``(family, n_components)`` (NaN where not tried).
    """
    rng = np.random.default_rng(opts.seed)
    cluster = np.zeros(len(feats), np.int16)
    score = np.ones(len(feats))
    bics = np.full((len(DEFECT_CLASSES), opts.max_classes), np.nan)
    offset = 0
    for row, fam in enumerate(DEFECT_CLASSES):
        sel = np.flatnonzero(family == fam)
        if len(sel) == 0:
            continue
        if len(sel) < 10:  # too few to model: one cluster
            cluster[sel] = offset
            offset += 1
            continue
        fit = sel[rng.choice(len(sel), size=min(len(sel), opts.max_fit), replace=False)]
        mu, sd = feats[fit].mean(0), feats[fit].std(0) + 1e-9
        z_fit = (feats[fit] - mu) / sd
        best = None
        for k in range(1, min(opts.max_classes, len(fit) // 5) + 1):
            if best is not None and k - best[1].n_components > opts.bic_patience:
                break  # BIC rose for bic_patience component counts in a row: stop the search
            gmm = GaussianMixture(k, covariance_type="full", random_state=opts.seed)
            gmm.fit(z_fit)
            bics[row, k - 1] = gmm.bic(z_fit)
            if best is None or bics[row, k - 1] < best[0]:
                best = (bics[row, k - 1], gmm)
        post = best[1].predict_proba((feats[sel] - mu) / sd)
        cluster[sel] = offset + post.argmax(1)
        score[sel] = post.max(1)
        offset += best[1].n_components
    return cluster, score, bics


def _table(det: xr.Dataset, source: str) -> dict[str, np.ndarray]:
    prefix = f"{source}_"
    if f"{prefix}row" not in det:
        raise ValueError(
            f"defects classify: the detections store has no '{source}' table "
            f"(methods: {det.attrs.get('methods')})"
        )
    return {k: det[prefix + k].values for k in TABLE_FIELDS}


def _truth_objects(movie: xr.Dataset, frame: np.ndarray, pos: np.ndarray, radius: float):
    """True object class and track of each object (-1 where no true object centre matches)."""
    tf = movie["true_frame"].values
    tobj = movie["true_object"].values
    sel = tobj >= 0
    tf, tobj = tf[sel], tobj[sel]
    tpos = np.stack([movie["true_row"].values[sel], movie["true_col"].values[sel]], 1)
    ttrack = movie["true_track"].values[sel]
    cls = np.full(len(frame), -1, np.int8)
    trk = np.full(len(frame), -1, np.int64)
    for f in np.unique(frame):
        a = np.flatnonzero(frame == f)
        b = np.flatnonzero(tf == f)
        i, j = match_points(pos[a], tpos[b], radius)
        cls[a[i]] = tobj[b[j]]
        trk[a[i]] = ttrack[b[j]]
    return cls, trk


def classify_objects(inputs: list[xr.Dataset], opts: ClassifyOptions) -> xr.Dataset:
    """Stage ``classify``: a ``defects.classes`` store.

    Parameters
    ----------
    inputs : [detections, movie]

    Returns
    -------
    xarray.Dataset
        Object table along ``point``: ``frame, row, col`` [px], ``row_A, col_A`` (drift-corrected
        position: relative to the unwrapped lattice origin [Å]), ``detected_class``, ``site_i,
        site_j, sublattice``, ``n_members``, ``cluster``, ``score`` (GMM posterior), ``class``
        (object code of :data:`~scopeflow.defects.lattice.OBJECT_NAMES`, -1 when no truth names
        the cluster); with truth also ``true_class, true_track`` and ``confusion (true, assigned)``
        counts; ``cluster_class (cluster)``; ``bic (n_components)``.
    """
    det, movie = inputs
    ps = float(det.attrs["pixel_size"])
    tab = build_objects(_table(det, opts.source), 1.35 * d_ws() / ps)
    tab["frame"] = tab["frame"].astype(np.int64)  # an empty table may come back as float
    n = len(tab["row"])
    if n == 0:
        log.warning("defects classify: no defect detections in the '%s' table", opts.source)
    sim = movie.attrs.get("simulation", {})
    sigma_px = float(sim.get("probe_sigma", 0.45)) / ps
    vecs = det["lattice_vectors"].values
    origins = det["lattice_origin"].values
    pos = np.stack([tab["row"], tab["col"]], 1).astype(np.float64)
    n_feat = (1, 4, 10, 13)[opts.shells]
    feats = np.zeros((n, n_feat))
    image = movie["image"]
    a_px = A_WS2 / ps
    reach = (0.0, a_px / np.sqrt(3.0), a_px, 2.0 * a_px / np.sqrt(3.0))[opts.shells]  # [px]
    t0 = time.perf_counter()
    for f in np.unique(tab["frame"]):
        sel = np.flatnonzero(tab["frame"] == f)
        frame = np.asarray(image.isel(frame=int(f)).values, np.float32)
        patches, corners = smooth_patches(frame, pos[sel], 0.7 * sigma_px, reach)
        a1 = vecs[f, 0]
        crops = canonical_crops(
            patches,
            pos[sel],
            tab["sublattice"][sel] == 0,
            float(np.arctan2(a1[0], a1[1])),
            a_px,
            n_sites=max(n_feat, 4),
            corners=corners,
        )
        # per-frame scale (dose): the frame's mean count, which is also the smoothed frame's
        # mean (the median of the smoothed frame, used before, needed the whole smoothed frame)
        scale = max(float(frame.mean(dtype=np.float64)), 1e-9)
        feats[sel] = crops[:, :n_feat] / scale
    t_crops = time.perf_counter() - t0
    t0 = time.perf_counter()
    # small GMM fits: BLAS threads only add contention (15x slower on a loaded 2-core box)
    with threadpool_limits(limits=1):
        cluster, score, bics = _cluster_families(feats, tab["class"], opts)
    t_gmm = time.perf_counter() - t0
    k = int(cluster.max()) + 1 if n else 0
    origin_all = origins[tab["frame"]]
    ds = xr.Dataset(
        coords={
            "point": ("point", np.arange(n), {"units": "1"}),
            "cluster_id": ("cluster_id", np.arange(k), {"units": "1"}),
            "n_components": ("n_components", np.arange(1, bics.shape[1] + 1), {"units": "1"}),
            "family": ("family", np.asarray(DEFECT_CLASSES), {"units": "1"}),
        }
    )
    for key in ("frame", "row", "col", "site_i", "site_j", "sublattice", "n_members"):
        ds[key] = ("point", tab[key], {"units": "px" if key in ("row", "col") else "1"})
    ds["detected_class"] = ("point", tab["class"].astype(np.int8), {"units": "1"})
    ds["row_A"] = ("point", (pos[:, 0] - origin_all[:, 0]) * ps, {"units": "Å"})
    ds["col_A"] = ("point", (pos[:, 1] - origin_all[:, 1]) * ps, {"units": "Å"})
    ds["cluster"] = ("point", cluster, {"units": "1"})
    ds["score"] = ("point", score.astype(np.float32), {"units": "1"})
    ds["bic"] = (("family", "n_components"), bics, {"units": "1"})
    cluster_class = np.full(k, -1, np.int8)
    if "true_object" in movie:
        tcls, ttrk = _truth_objects(movie, tab["frame"], pos, 0.9 / ps)
        for c in range(k):
            hit = tcls[(cluster == c) & (tcls >= 0)]
            if len(hit):
                cluster_class[c] = np.bincount(hit, minlength=len(OBJECT_NAMES)).argmax()
        assigned = cluster_class[cluster]
        m = len(OBJECT_NAMES)
        conf = np.zeros((m, m), np.int64)
        ok = (tcls >= 0) & (assigned >= 0)
        np.add.at(conf, (tcls[ok], assigned[ok]), 1)
        ds["true_class"] = ("point", tcls, {"units": "1"})
        ds["true_track"] = ("point", ttrk, {"units": "1"})
        ds["confusion"] = (("true", "assigned"), conf, {"units": "count"})
        ds = ds.assign_coords(
            true=("true", np.arange(m), {"units": "1", "names": list(OBJECT_NAMES)}),
            assigned=("assigned", np.arange(m), {"units": "1", "names": list(OBJECT_NAMES)}),
        )
    ds["class"] = ("point", cluster_class[cluster], {"units": "1"})
    ds["cluster_class"] = ("cluster_id", cluster_class, {"units": "1"})
    ds["lattice_vectors"] = (("lattice_frame", "basis", "axis"), vecs, {"units": "px"})
    ds["lattice_origin"] = (("lattice_frame", "axis"), origins, {"units": "px"})
    for key in ("pixel_size", "frame_time", "dose", "electron_dose"):
        ds.attrs[key] = det.attrs.get(key)
    ds.attrs.update(
        crop_seconds=t_crops,
        gmm_seconds=t_gmm,
        source=opts.source,
        n_clusters=int(k),
        object_names=list(OBJECT_NAMES),
        n_frames=int(det.sizes["frame"]),
    )
    return ds
