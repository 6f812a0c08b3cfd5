"""Sum the target's patterns into one frame per tilt (``reduce``).

Every pattern is shifted by whole pixels so that its direct beam (centre of mass near the tilt's
beam) lands on the detector centre, then the patterns inside a mask are summed. Variants are
reduced in the same pass over the counts so baselines see identical data: ``tracked`` (the
tracked mask), ``fixed_box`` (the first box, never moved), ``whole_field`` (every probe) and,
for simulated data, ``oracle`` (the target's true footprint). Besides, ``surround`` sums the
probes of a band ``surround_px`` wide around the tracked box (not indexed: the index stage checks
that the reported crystal lies inside the box, :func:`scopeflow.tomo4d.consistency.surround_ratio`).
``virtual_frames > 1`` sums that many consecutive tilts into one virtual frame at their mean
angle (fine tilt steps).

Store (kind ``tomo4d.frames``): per variant ``frames_<variant> (frame, k_row, k_col)`` float32
[counts], ``probes_<variant> (frame)`` (patterns summed) and ``beam_offset_<variant> (frame,
axis)`` [px], the residual sub-pixel offset of the direct beam from ``attrs["beam_centre_px"]``;
coordinate ``tilt (frame)`` [deg]; ``attrs["variants"]`` lists the variants.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import ndimage as ndi

from scopeflow.tomo4d.options import ReduceOptions
from scopeflow.tomo4d.sparse import beam_centres, check_series, sum_patterns, tilt_entries

__all__ = ["reduce", "frame_centre", "surround_masks"]


def frame_centre(frame: np.ndarray, guess: np.ndarray, radius: float) -> np.ndarray:
    """Sub-pixel direct-beam centre (row, col) [px] of a frame: centre of mass near ``guess``."""
    n = frame.shape[0]
    rr, cc = np.indices(frame.shape)
    near = np.hypot(rr - guess[0], cc - guess[1]) <= radius
    w = frame * near
    tot = w.sum()
    if tot <= 0:
        return np.asarray(guess, float)
    return np.array([(w * rr).sum() / tot, (w * cc).sum() / tot]).clip(0, n - 1)


def surround_masks(boxes: np.ndarray, shape: tuple[int, int], width: int) -> np.ndarray:
    """Band (tilt, row, col) bool ``width`` px wide around each box (row0, col0, row1, col1)."""
    out = np.zeros((len(boxes), *shape), bool)
    for it, (r0, c0, r1, c1) in enumerate(np.asarray(boxes, int)):
        inbox = np.zeros(shape, bool)
        inbox[max(r0, 0) : max(r1, 0), max(c0, 0) : max(c1, 0)] = True
        if width > 0 and inbox.any():
            out[it] = ndi.binary_dilation(inbox, np.ones((3, 3), bool), iterations=width) & ~inbox
    return out


def reduce(inputs: list, opts: ReduceOptions) -> xr.Dataset:
    """Reduce stage (see module docstring)."""
    series, tracks = inputs
    n_t, n_r, n_c, n_det = check_series(series)
    masks = {
        "tracked": np.asarray(tracks["mask"].values, bool),
        "fixed_box": np.asarray(tracks["mask_fixed_box"].values, bool),
        "whole_field": np.ones((n_t, n_r, n_c), bool),
    }
    if "true_thickness_nm" in series:
        target = series.attrs["ground_truth"]["target"]
        masks["oracle"] = np.asarray(series["true_thickness_nm"][target].values) > 0
    index_names = list(masks)
    boxes = np.asarray(tracks["box"].values)
    masks["surround"] = surround_masks(boxes, (n_r, n_c), opts.surround_px)
    names = list(masks)
    centre = np.array([n_det // 2, n_det // 2])
    per_tilt = np.zeros((len(names), n_t, n_det, n_det), np.float32)
    for it in range(n_t):
        pattern, pixel, counts = tilt_entries(series, it)
        shift = None
        if opts.recentre:
            bc = beam_centres(pattern, pixel, counts, n_r * n_c, n_det, opts.centre_radius_px)
            shift = np.round(centre - bc).astype(np.int64)
        for iv, name in enumerate(names):
            sel = masks[name][it].ravel()
            per_tilt[iv, it] = sum_patterns(pattern, pixel, counts, sel, n_det, shift)
    k = opts.virtual_frames
    n_f = n_t // k
    frames = per_tilt[:, : n_f * k].reshape(len(names), n_f, k, n_det, n_det).sum(axis=2)
    tilt = np.asarray(series["tilt"].values)[: n_f * k].reshape(n_f, k).mean(axis=1)
    offset = np.zeros((len(names), n_f, 2))
    for iv in range(len(names)):
        for f in range(n_f):
            offset[iv, f] = frame_centre(frames[iv, f], centre, opts.centre_radius_px) - centre
    attrs = {
        key: series.attrs[key]
        for key in ("beam_energy_eV", "k_pixel_inv_A", "tilt_axis_deg", "convergence_mrad")
        if key in series.attrs
    }
    attrs["beam_centre_px"] = centre.tolist()
    if "ground_truth" in series.attrs:
        attrs["ground_truth"] = series.attrs["ground_truth"]
    attrs["variants"] = index_names
    probes = {n: m.sum((1, 2))[: n_f * k].reshape(n_f, k).sum(1) for n, m in masks.items()}
    data = {}
    for iv, name in enumerate(names):
        data[f"frames_{name}"] = (("frame", "k_row", "k_col"), frames[iv], {"units": "counts"})
        data[f"beam_offset_{name}"] = (("frame", "axis"), offset[iv], {"units": "px"})
        data[f"probes_{name}"] = (("frame",), probes[name], {"units": "1"})
    return xr.Dataset(
        data,
        coords={
            "tilt": ("frame", tilt, {"units": "deg"}),
            "frame": ("frame", np.arange(n_f), {"units": "1"}),
            "axis": ("axis", np.arange(2), {"units": "1", "order": "k_row k_col"}),
        },
        attrs=attrs,
    )
