"""Does one crystal explain the summed frames over the whole tilt range? (``index`` check).

A track that loses its particle half-way sums a neighbour's patterns into the later frames. The
cell found from all the spots is then the crystal that dominates the total intensity, which may
be the neighbour, while the other crystal's frames are left unexplained. Without ground truth,
this shows up as a tilt window in which the found lattice indexes only a chance share of the
diffracted intensity: for the target's own frames the indexed share of the spot intensity is
high in every window (strong reflections of the particle that dominates the frames lie near
lattice points), for a window summed over another crystal it drops towards the chance rate of
a random spot falling within ``tolerance`` of a lattice point in all three indices,
``(2 tolerance)^3`` (1.4 % at 0.12) plus the share of spots the two lattices happen to share.

The check splits the frames into ``n_windows`` contiguous tilt windows and flags the cell when
the intensity-weighted indexed fraction of any window with enough spots falls below
``min_fraction``; the cell is then not reported (a wrong crystal's cell is worse than none).
The default floor (15 % in each of 4 windows) lies ten times above the chance rate and below the
lowest window share of the 37 correctly tracked targets of the benchmark blocks measured when
it was set (0.23; a track that jumped to a neighbour: 0.00). It does not catch a track that
keeps a neighbour in its mask over the whole range and reports that neighbour's cell (its
lattice then explains every window).

That case is checked in real space instead (:func:`surround_ratio`): the user's box encloses the
target and the tracker moves it with the target, so the target's crystal diffracts inside the
box and hardly in a band around it, while a neighbour lying over or under the target (rods piled
up, or brought together in projection at high tilt) reaches out of the box. The check is the
ratio of the found lattice's spot intensity in the patterns summed over the band's probes to
that in the patterns summed over the mask, at the indexed spots' detector positions. Measured
with a 3 px band on the 60 targets of ``bench/tomo4d.py`` when the default floor
(``IndexOptions.max_surround_ratio`` 0.35) was set: the target's lattice 0.01-0.13 at +-30 deg
(brookite, dense packing, three-times drift), up to 0.22 for CsPbBr3 and 0.27 at +-60 deg
(where the box wanders by up to 5 px); the neighbours' lattices that had been reported as the
target's 0.49 (+-60 deg), 0.61 (dense packing) and 0.71 (the dense case of
``tests/tomo4d/test_neighbour.py``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["window_fractions", "check_consistency", "surround_ratio"]


def window_fractions(
    frame: np.ndarray, intensity: np.ndarray, indexed: np.ndarray, n_frames: int, n_windows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Intensity-weighted indexed fraction of the spots in contiguous tilt windows.

    Parameters
    ----------
    frame : (n,) int, frame index of each spot
    intensity : (n,) float [counts]
    indexed : (n,) bool
    n_frames : int, frames in the series
    n_windows : int, contiguous windows of (nearly) equal numbers of frames

    Returns
    -------
    fraction : (n_windows,) float, indexed share of the window's spot intensity (NaN when the
        window has no spot), n_spots : (n_windows,) int
    """
    win = np.minimum(np.asarray(frame, int) * n_windows // max(n_frames, 1), n_windows - 1)
    w = np.clip(np.asarray(intensity, float), 0.0, None)
    total = np.bincount(win, weights=w, minlength=n_windows)
    hit = np.bincount(win, weights=w * np.asarray(indexed, bool), minlength=n_windows)
    n_spots = np.bincount(win, minlength=n_windows)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(total > 0, hit / total, np.nan)
    return fraction, n_spots


def check_consistency(
    frame: np.ndarray,
    intensity: np.ndarray,
    indexed: np.ndarray,
    n_frames: int,
    n_windows: int,
    min_fraction: float,
    min_spots: int = 8,
) -> dict:
    """Flag a cell that does not explain every tilt window (see the module docstring).

    Parameters
    ----------
    frame, intensity, indexed, n_frames, n_windows : see :func:`window_fractions`
    min_fraction : float, least indexed intensity share of a window
    min_spots : int, windows with fewer spots are not judged (too few to tell)

    Returns
    -------
    dict with ``consistent`` (bool), ``window_fraction`` (list of float, NaN as None),
    ``min_window_fraction`` (float) and ``reason`` ('' when consistent).
    """
    frac, n_spots = window_fractions(frame, intensity, indexed, n_frames, n_windows)
    judged = (n_spots >= min_spots) & np.isfinite(frac)
    worst = float(np.min(frac[judged])) if judged.any() else float("nan")
    ok = not judged.any() or worst >= min_fraction
    reason = ""
    if not ok:
        k = int(np.flatnonzero(judged)[np.argmin(frac[judged])])
        reason = (
            f"tilt window {k + 1}/{n_windows}: only {worst:.0%} of the spot intensity indexed "
            f"(< {min_fraction:.0%}); the frames are not one crystal's (lost track?)"
        )
    return {
        "consistent": bool(ok),
        "window_fraction": [None if not np.isfinite(v) else float(v) for v in frac],
        "min_window_fraction": worst,
        "reason": reason,
    }


def _disk_sums(frame: np.ndarray, pos: np.ndarray, radius: float) -> np.ndarray:
    """Background-subtracted disk sums [counts] of ``frame`` at ``pos`` (n, 2) [px] (row, col).

    The disk has radius ``radius + 1``; the background is the median of an annulus 2-4 px
    outside it (robust to a neighbouring spot), times the disk area.
    """
    r_in, r_out = radius + 1.0, radius + 5.0
    m = int(np.ceil(r_out))
    yy, xx = np.mgrid[-m : m + 1, -m : m + 1]
    rr = np.hypot(yy, xx)
    disk, ring = rr <= r_in, (rr >= r_in + 2.0) & (rr <= r_out)
    padded = np.pad(np.asarray(frame, float), m, mode="edge")
    out = np.zeros(len(pos))
    for k, (r, c) in enumerate(np.round(pos).astype(int)):
        r = min(max(r, 0), frame.shape[0] - 1)
        c = min(max(c, 0), frame.shape[1] - 1)
        patch = padded[r : r + 2 * m + 1, c : c + 2 * m + 1]
        out[k] = patch[disk].sum() - np.median(patch[ring]) * disk.sum()
    return out


def surround_ratio(
    frames_in: np.ndarray,
    frames_out: np.ndarray,
    spots: np.ndarray,
    indexed: np.ndarray,
    radius: float,
) -> float:
    """Spot intensity of the found lattice around the box relative to inside the mask.

    Parameters
    ----------
    frames_in : (frame, k_row, k_col) float [counts], patterns summed over the tracked mask
    frames_out : (frame, k_row, k_col) float [counts], patterns summed over the band around
        the tracked box, re-centred like ``frames_in``
    spots : (n, >=3) float, columns frame, row, col [px] (found in ``frames_in``)
    indexed : (n,) bool, spots of the found lattice
    radius : float [px], spot disk radius

    Returns
    -------
    ratio : float, sum over the indexed spots of the band's background-subtracted disk sums over
        the same sums in ``frames_in`` (NaN when the indexed spots hold no intensity)
    """
    spots = np.asarray(spots, float)
    sel = spots[np.asarray(indexed, bool)]
    s_in = s_out = 0.0
    for f in np.unique(sel[:, 0]).astype(int):
        pos = sel[sel[:, 0] == f, 1:3]
        s_in += float(_disk_sums(np.asarray(frames_in[f], float), pos, radius).sum())
        s_out += float(_disk_sums(np.asarray(frames_out[f], float), pos, radius).sum())
    return s_out / s_in if s_in > 0 else float("nan")
