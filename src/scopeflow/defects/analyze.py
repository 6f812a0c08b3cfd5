"""Stage ``analyze``: metrics vs ground truth (when the movie has it) and summary numbers.

Inputs (in order): ``defects.movie``, ``defects.detections``, ``defects.classes``,
``defects.tracks``, ``defects.kinetics``: analyze reads several stores so that every metric is
computed where both the estimate and the truth are at hand.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from scopeflow.defects.lattice import CLASS_NAMES, DEFECT_CLASSES, MO, V_S
from scopeflow.defects.options import AnalyzeOptions
from scopeflow.defects.scoring import match_points, prf
from scopeflow.tracking import track_purity

__all__ = ["detection_counts", "analyze_stage"]


def detection_counts(
    movie: xr.Dataset,
    det: xr.Dataset,
    method: str,
    radius_px: float,
    border_px: float,
    frames: np.ndarray,
) -> dict[int, list[int]]:
    """(true positives, detections, truths) per defect class over ``frames``.

    Points closer than ``border_px`` to the frame edge are left out on both sides.
    """
    ny, nx = movie.sizes["row"], movie.sizes["col"]

    def inside(r, c):
        return (
            (r >= border_px)
            & (r <= ny - 1 - border_px)
            & (c >= border_px)
            & (c <= nx - 1 - border_px)
        )

    tf, tc = movie["true_frame"].values, movie["true_class"].values
    tr, tcol = movie["true_row"].values, movie["true_col"].values
    df, dc = det[f"{method}_frame"].values, det[f"{method}_class"].values
    dr, dcol = det[f"{method}_row"].values, det[f"{method}_col"].values
    t_in, d_in = inside(tr, tcol), inside(dr, dcol)
    out = {c: [0, 0, 0] for c in DEFECT_CLASSES}
    for f in frames:
        for c in DEFECT_CLASSES:
            ts = (tf == f) & (tc == c) & t_in
            ds = (df == f) & (dc == c) & d_in
            i, _ = match_points(
                np.stack([dr[ds], dcol[ds]], 1), np.stack([tr[ts], tcol[ts]], 1), radius_px
            )
            acc = out[c]
            acc[0] += len(i)
            acc[1] += int(ds.sum())
            acc[2] += int(ts.sum())
    return out


def _transition_metrics(kin: xr.Dataset, truth: np.ndarray) -> dict:
    m = {}
    for name in ("uncorrected", "corrected"):
        p = kin[f"transition_{name}"].values
        lo, hi = kin[f"transition_{name}_lo"].values, kin[f"transition_{name}_hi"].values
        if p.shape != truth.shape or not np.isfinite(p).all():
            continue
        err = np.abs(p - truth)
        half = np.maximum((hi - lo) / 2, 1e-12)
        m[f"kinetics.transition_abs_error.{name}"] = float(err.max())
        m[f"kinetics.transition_mean_abs_error.{name}"] = float(err.mean())
        m[f"kinetics.transition_within_ci.{name}"] = float(((truth >= lo) & (truth <= hi)).mean())
        m[f"kinetics.transition_max_error_over_halfwidth.{name}"] = float((err / half).max())
    return m


def analyze_stage(inputs: list[xr.Dataset], opts: AnalyzeOptions) -> xr.Dataset:
    """Stage ``analyze``: a ``defects.analysis`` store whose ``attrs["metrics"]`` is flat.

    Keys: ``detect.<nn|baseline>.<precision|recall|f1>.<class>`` (all frames) and
    ``detect.<method>.late.<...>.<class>`` (frames from the damage onset on),
    ``detect.<method>.frames_per_second``, ``classify.*``, ``track.purity``,
    ``kinetics.D_*`` and ``kinetics.transition_*``; numbers without truth are still reported.
    """
    movie, det, cls, trk, kin = inputs
    ps = float(movie.attrs["pixel_size"])
    m: dict[str, float | int | str] = {}
    nf = movie.sizes["frame"]
    for meth in det.attrs.get("methods", []):
        m[f"detect.{meth}.frames_per_second"] = 1.0 / float(det.attrs[f"{meth}_seconds_per_frame"])
    diff = kin.attrs["diffusion"]
    for est in ("hop", "msd"):
        for unit in ("A2_per_s", "A2_per_frame"):
            for key in ("value", "lo", "hi"):
                m[f"kinetics.D_{est}.{unit}.{key}"] = float(diff[est][unit][key])
        if diff[est]["A2_per_e_per_A2"]:
            m[f"kinetics.D_{est}.A2_per_e_per_A2"] = float(diff[est]["A2_per_e_per_A2"]["value"])
    m["kinetics.localisation_rms_A"] = float(diff["localisation_rms_A"])
    m["classify.n_clusters"] = int(cls.attrs["n_clusters"])
    for fam, s in trk.attrs.get("tracks", {}).items():
        for key, v in s.items():
            m[f"track.{fam}.{key}"] = int(v)
    if "true_class" in movie:
        gt = movie.attrs.get("ground_truth", {})
        late = np.arange(int(gt.get("disorder_start", nf)), nf)
        for meth in det.attrs.get("methods", []):
            for tag, frames in (("", np.arange(nf)), ("late.", late)):
                if len(frames) == 0:
                    continue
                counts = detection_counts(
                    movie, det, meth, opts.match_radius / ps, opts.match_radius / ps + 2, frames
                )
                for c, (tp, nd, nt) in counts.items():
                    p, r, f = prf(tp, nd, nt)
                    name = CLASS_NAMES[c]
                    m[f"detect.{meth}.{tag}precision.{name}"] = p
                    m[f"detect.{meth}.{tag}recall.{name}"] = r
                    m[f"detect.{meth}.{tag}f1.{name}"] = f
        if "confusion" in cls:
            conf = cls["confusion"].values
            m["classify.accuracy"] = float(np.trace(conf) / max(conf.sum(), 1))
            sub = conf[1:4, 1:4]
            m["classify.complex_accuracy"] = float(np.trace(sub) / max(sub.sum(), 1))
        tt, tk = trk["true_track"].values, trk["track"].values
        fam = trk["detected_class"].values
        for name, code in (("V_S", V_S), ("Mo", MO)):
            sel = fam == code
            m[f"track.purity.{name}"] = track_purity(tk[sel], tt[sel])
        sel = np.isin(fam, (V_S, MO))
        m["track.purity"] = track_purity(tk[sel] + 0, np.where(tt[sel] >= 0, tt[sel], -1))
        d_true = float(gt["D_A2_per_s"])
        m["kinetics.D_true_A2_per_s"] = d_true
        m["kinetics.D_rel_error"] = abs(float(diff["hop"]["A2_per_s"]["value"]) / d_true - 1)
        m["kinetics.D_msd_rel_error"] = abs(float(diff["msd"]["A2_per_s"]["value"]) / d_true - 1)
        d_real = gt.get("D_realised_A2_per_s")
        if d_real:
            m["kinetics.D_realised_A2_per_s"] = float(d_real)
            m["kinetics.D_rel_error_vs_realised"] = abs(
                float(diff["hop"]["A2_per_s"]["value"]) / d_real - 1
            )
        m.update(_transition_metrics(kin, np.asarray(gt["transition_matrix"])))
    return xr.Dataset(attrs={"metrics": m})
