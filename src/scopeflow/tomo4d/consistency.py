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
lattice then explains every window): that needs the tracker to stay on its particle.
"""

from __future__ import annotations

import numpy as np

__all__ = ["window_fractions", "check_consistency"]


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
