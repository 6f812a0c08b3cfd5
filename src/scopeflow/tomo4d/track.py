"""Follow one particle through the tilt series on virtual annular images (``track``).

Pipeline after Gholam et al., arXiv:2602.09768 (2026): a virtual annular dark-field image per
tilt; an established object tracker (OpenCV CSRT, Lukezic et al., CVPR 2017,
doi:10.1109/CVPR.2017.515, or MIL) proposes the box on each tilt; normalised cross-correlation
(``skimage.feature.match_template``) against the target's appearance on the previous tilt AND on
a reference tilt ``reference_lag`` tilts back checks it, so slow appearance drift cannot walk
the box onto a neighbour. Segmentation stays inside the tracked box: particles are segmented by
a threshold (Otsu) and a watershed on the smoothed ADF image; on the first tilt the blob nearest
the box centre is the target, later the regions lying mostly inside the previous and the lagged
masks (moved with the box) are. Touching rods of one material look alike in the ADF image, so
by default (``diffraction_split``) the mask is split by diffraction instead
(:mod:`scopeflow.tomo4d.signature`): on the first tilt grown from the box centre over the box's
foreground, later from the moved previous mask; a split that loses more than half of the moved
mask (the target's spots fading at that tilt) falls back to the segmentation.

Store (kind ``tomo4d.track``): ``adf (tilt, scan_row, scan_col)`` [counts], ``mask``,
``mask_fixed_box`` (baseline: the first box, never moved) ``(tilt, scan_row, scan_col)`` bool,
``box (tilt, edge)`` int (row0, col0, row1, col1).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import ndimage as ndi
from skimage.feature import match_template, peak_local_max
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

from scopeflow.tomo4d.options import TrackOptions
from scopeflow.tomo4d.signature import bragg_vectors, split_by_diffraction
from scopeflow.tomo4d.sparse import bragg_pixels, check_series, tilt_entries, virtual_annular

__all__ = ["track", "segment_in_box", "follow"]


def _labels(img: np.ndarray, split: str, min_distance: float) -> np.ndarray:
    """Particle labels (row, col) int: Otsu foreground split by a watershed on the ADF image."""
    smooth = ndi.gaussian_filter(img, 1.0)
    fg = smooth > threshold_otsu(smooth)
    if split != "watershed" or not fg.any():
        return ndi.label(fg)[0]
    dist = ndi.distance_transform_edt(fg)
    peaks = peak_local_max(dist, min_distance=int(min_distance), labels=fg.astype(int))
    if len(peaks) == 0:
        return ndi.label(fg)[0]
    markers = np.zeros(fg.shape, int)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-dist, markers, mask=fg)


def segment_in_box(img: np.ndarray, box: np.ndarray, split: str, min_distance: float) -> np.ndarray:
    """Mask (row, col) bool of the blob nearest the centre of ``box`` (row0, col0, row1, col1)."""
    labels = _labels(img, split, min_distance) * _box_mask(img, box)
    r0, c0, r1, c1 = (int(v) for v in box)
    centre = np.array([(r0 + r1 - 1) / 2, (c0 + c1 - 1) / 2])
    best, best_d = 0, np.inf
    for lab in np.unique(labels[labels > 0]):
        pts = np.argwhere(labels == lab)
        d = np.min(np.linalg.norm(pts - centre, axis=1))
        if d < best_d:
            best, best_d = lab, d
    return labels == best if best else np.zeros(img.shape, bool)


def _box_mask(img: np.ndarray, box: np.ndarray) -> np.ndarray:
    """(row, col) bool: inside ``box`` (row0, col0, row1, col1), clipped to the image."""
    inbox = np.zeros(img.shape, bool)
    inbox[max(int(box[0]), 0) : max(int(box[2]), 0), max(int(box[1]), 0) : max(int(box[3]), 0)] = (
        True
    )
    return inbox


def _shift(mask: np.ndarray, d: np.ndarray) -> np.ndarray:
    return ndi.shift(mask.astype(float), d, order=0, mode="constant") > 0.5


def _select(labels: np.ndarray, predicted: list[np.ndarray]) -> np.ndarray:
    """Union of the labels lying mostly inside the predicted masks (previous + lagged tilt vote)."""
    pred = np.mean([p.astype(float) for p in predicted], axis=0)
    best, best_score, chosen = 0, 0.0, []
    for lab in np.unique(labels[labels > 0]):
        region = labels == lab
        score = float(pred[region].sum())
        if float(pred[region].mean()) > 0.5:
            chosen.append(lab)
        if score > best_score:
            best, best_score = lab, score
    if not chosen and best:
        chosen = [best]
    return np.isin(labels, chosen)


def _to_uint8(img: np.ndarray, up: int) -> np.ndarray:
    lo, hi = np.percentile(img, [1, 99.5])
    a = np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1)
    a = np.kron(a, np.ones((up, up)))
    return (255 * a).astype(np.uint8)


def _match(img: np.ndarray, template: np.ndarray, guess: np.ndarray, reach: int):
    """Best top-left (row, col) of ``template`` in ``img`` within ``reach`` px of ``guess``."""
    score = match_template(img, template, pad_input=False)
    r, c = np.indices(score.shape)
    near = (np.abs(r - guess[0]) <= reach) & (np.abs(c - guess[1]) <= reach)
    score = np.where(near, score, -np.inf)
    k = int(np.argmax(score))
    return np.array(divmod(k, score.shape[1])), float(score.flat[k])


def _diffraction_refine(
    series, it: int, img: np.ndarray, mask: np.ndarray, region: np.ndarray, grow: int = 1
) -> np.ndarray:
    pattern, pixel, counts = tilt_entries(series, it)
    n_det = int(series.attrs["detector_shape"][0])
    total = np.bincount(pixel, weights=counts, minlength=n_det * n_det).reshape(n_det, n_det)
    vec = bragg_vectors(pattern, pixel, counts, bragg_pixels(total), img.size)
    smooth = ndi.gaussian_filter(img, 1.0)
    fg = (smooth > threshold_otsu(smooth)) & region
    out = split_by_diffraction(vec, fg, mask, grow=grow)
    return out if out.any() else mask


def follow(
    adf: np.ndarray, box0: np.ndarray, opts: TrackOptions, series=None
) -> tuple[np.ndarray, np.ndarray]:
    """Track the target box and segment its mask on every tilt.

    Parameters
    ----------
    adf : (tilt, row, col) float
        Virtual annular images.
    box0 : (4,) int
        Box (row0, col0, row1, col1) on the first tilt.
    opts : TrackOptions
    series : xarray.Dataset, optional
        The sparse series; with ``opts.diffraction_split`` the mask is refined on every tilt by
        :func:`scopeflow.tomo4d.signature.split_by_diffraction`.

    Returns
    -------
    masks : (tilt, row, col) bool
    boxes : (tilt, 4) int
    """
    n_t = adf.shape[0]
    up = opts.upsample
    h, w = int(box0[2] - box0[0]), int(box0[3] - box0[1])
    tracker = None
    if opts.tracker != "template":
        import cv2  # opencv-contrib-python-headless (tomo4d extra)

        make = cv2.TrackerCSRT_create if opts.tracker == "csrt" else cv2.TrackerMIL_create

        def start(img, tl):
            trk = make()
            frame = cv2.cvtColor(_to_uint8(img, up), cv2.COLOR_GRAY2BGR)
            trk.init(frame, (int(tl[1]) * up, int(tl[0]) * up, w * up, h * up))
            return trk

        tracker = start(adf[0], box0[:2])
    boxes = np.zeros((n_t, 4), int)
    masks = np.zeros(adf.shape, bool)
    boxes[0] = box0
    masks[0] = segment_in_box(adf[0], box0, opts.split, opts.min_distance_px)
    refine = opts.diffraction_split and series is not None
    if refine:
        # the user's box is centred on the target: its crystal is the one under the box centre,
        # grown from there over the box's foreground by its diffraction
        rr, cc = np.indices(adf[0].shape)
        core = np.hypot(rr - (box0[0] + box0[2] - 1) / 2, cc - (box0[1] + box0[3] - 1) / 2)
        core = core <= max(min(h, w) / 4.0, 1.0)
        masks[0] = _diffraction_refine(
            series, 0, adf[0], core, _box_mask(adf[0], box0), grow=max(h, w)
        )

    patches = [adf[0, box0[0] : box0[2], box0[1] : box0[3]].copy()]
    for it in range(1, n_t):
        guess = boxes[it - 1, :2].astype(float)
        if tracker is not None:
            ok, bb = tracker.update(cv2.cvtColor(_to_uint8(adf[it], up), cv2.COLOR_GRAY2BGR))
            if ok:
                guess = np.array([bb[1] + bb[3] / 2, bb[0] + bb[2] / 2]) / up - [h / 2, w / 2]
        padded = np.pad(adf[it], ((h, h), (w, w)), mode="edge")
        refs = [patches[it - 1]]
        if opts.reference_lag and it - opts.reference_lag >= 0:
            refs.append(patches[it - opts.reference_lag])
        # the previous tilt and the lagged reference vote; the tracker's proposal seeds the search
        cands = [_match(padded, ref, np.round(guess).astype(int) + [h, w], 2) for ref in refs]
        pos = np.mean([c[0] for c in cands], axis=0) - [h, w]
        tl = np.round(0.5 * pos + 0.5 * guess).astype(int)
        boxes[it] = [tl[0], tl[1], tl[0] + h, tl[1] + w]
        predicted = [_shift(masks[it - 1], tl - boxes[it - 1, :2])]
        if opts.reference_lag and it - opts.reference_lag >= 0:
            lag = it - opts.reference_lag
            predicted.append(_shift(masks[lag], tl - boxes[lag, :2]))
        labels = _labels(adf[it], opts.split, opts.min_distance_px) * _box_mask(adf[it], boxes[it])
        masks[it] = _select(labels, predicted)
        if not masks[it].any():  # target lost in the segmentation: keep the moved mask
            masks[it] = predicted[0]
        if refine:  # re-split the moved previous mask by diffraction (not the watershed union)
            region = _box_mask(adf[it], boxes[it])
            split = _diffraction_refine(series, it, adf[it], predicted[0], region)
            # a split far smaller than the moved mask lost the target (its spots faded at this
            # tilt): keep the segmentation instead
            if split.sum() >= 0.5 * predicted[0].sum():
                masks[it] = split
        patches.append(padded[tl[0] + h : tl[0] + 2 * h, tl[1] + w : tl[1] + 2 * w].copy())
        if tracker is not None and np.abs(tl - guess).max() > 1.5:
            tracker = start(adf[it], tl)  # re-seed where the references put the target
    return masks, boxes


def track(inputs: list, opts: TrackOptions) -> xr.Dataset:
    """Track stage: ADF images, tracked masks and the fixed-box baseline mask."""
    (series,) = inputs
    n_t, n_r, n_c, _ = check_series(series)
    if opts.outer_px <= opts.inner_px:
        raise ValueError(f"track: outer_px {opts.outer_px} must exceed inner_px {opts.inner_px}")
    box0 = np.asarray(opts.init_box or series.attrs.get("target_box", ()), int)
    if box0.shape != (4,):
        raise ValueError(
            "track: give init_box (row0, col0, row1, col1); the store has no target_box"
        )
    if not (0 <= box0[0] < box0[2] <= n_r and 0 <= box0[1] < box0[3] <= n_c):
        raise ValueError(
            f"track: init_box {box0.tolist()} is not a box (row0, col0, row1, col1) inside the "
            f"{n_r} x {n_c} scan"
        )
    adf = virtual_annular(series, opts.inner_px, opts.outer_px, opts.exclude_bragg)
    masks, boxes = follow(adf, box0, opts, series)
    fixed = np.zeros_like(masks)
    fixed[:, box0[0] : box0[2], box0[1] : box0[3]] = True
    ds = xr.Dataset(
        {
            "adf": (("tilt", "scan_row", "scan_col"), adf.astype(np.float32), {"units": "counts"}),
            "mask": (("tilt", "scan_row", "scan_col"), masks),
            "mask_fixed_box": (("tilt", "scan_row", "scan_col"), fixed),
            "box": (("tilt", "edge"), boxes, {"units": "px", "order": "row0 col0 row1 col1"}),
        },
        coords={
            "tilt": series["tilt"],
            "scan_row": series["scan_row"],
            "scan_col": series["scan_col"],
            "edge": ("edge", np.arange(4), {"units": "1"}),
        },
        attrs={"tracker": opts.tracker, "reference_lag": opts.reference_lag},
    )
    return ds
