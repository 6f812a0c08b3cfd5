"""Operations on the sparse (CSR-like) tilt-series store, one tilt at a time.

A tilt's patterns are the slice ``[offset[t,0,0], offset[t,-1,-1] + nnz[t,-1,-1])`` of the
``pixel``/``counts`` arrays; only that slice is read (memory bounded by one tilt's counts).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import ndimage as ndi

__all__ = [
    "check_series",
    "tilt_entries",
    "bragg_pixels",
    "virtual_annular",
    "sum_patterns",
    "beam_centres",
]

_REQUIRED = ("pixel", "counts", "pattern_offset", "pattern_nnz")


def check_series(ds: xr.Dataset) -> tuple[int, int, int, int]:
    """Validate a series store; return (n_tilt, n_row, n_col, n_det)."""
    missing = [v for v in _REQUIRED if v not in ds]
    if missing:
        raise ValueError(f"tomo4d series store lacks variables {missing}")
    dims = ds["pattern_offset"].dims
    if dims != ("tilt", "scan_row", "scan_col"):
        raise ValueError(f"pattern_offset has dims {dims}, expected (tilt, scan_row, scan_col)")
    for key in ("k_pixel_inv_A", "beam_energy_eV", "detector_shape", "tilt_axis_deg"):
        if key not in ds.attrs:
            raise ValueError(f"tomo4d series store lacks the calibration attr {key!r}")
    n_t, n_r, n_c = ds["pattern_offset"].shape
    return n_t, n_r, n_c, int(ds.attrs["detector_shape"][0])


def tilt_entries(ds: xr.Dataset, it: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pattern index (within the tilt), flat pixel and counts of tilt ``it``.

    Returns
    -------
    pattern : (m,) int64, pixel : (m,) int64, counts : (m,) float64
    """
    off = np.asarray(ds["pattern_offset"][it].values).ravel()
    nnz = np.asarray(ds["pattern_nnz"][it].values).ravel()
    start, stop = int(off[0]), int(off[-1] + nnz[-1])
    pixel = np.asarray(ds["pixel"][start:stop].values).astype(np.int64)
    counts = np.asarray(ds["counts"][start:stop].values).astype(np.float64)
    pattern = np.repeat(np.arange(len(nnz)), nnz)
    return pattern, pixel, counts


def bragg_pixels(total: np.ndarray, sigma: float = 5.0) -> np.ndarray:
    """Pixels (k_row, k_col) bool of the Bragg spots of a tilt's summed pattern.

    A white top-hat (opening of 9 px) keeps the spots, a pixel is a spot pixel where the top-hat
    exceeds ``sigma`` Poisson deviations of the opened background; dilated by 2 px.
    """
    bg = ndi.grey_opening(total, size=(9, 9))
    spot = (total - bg) > sigma * np.sqrt(bg + 1.0)
    return ndi.binary_dilation(spot, iterations=2)


def virtual_annular(
    ds: xr.Dataset, inner_px: float, outer_px: float, exclude_bragg: bool = True
) -> np.ndarray:
    """Virtual annular dark-field images (tilt, scan_row, scan_col) [counts].

    The annulus is centred on each tilt's direct beam. With ``exclude_bragg`` the pixels of the
    tilt's Bragg spots (:func:`bragg_pixels`) are left out, so the image counts the diffuse
    scattering, which grows with the projected thickness, instead of diffraction contrast that
    switches particles on and off from tilt to tilt.
    """
    n_t, n_r, n_c, n_det = check_series(ds)
    rr, cc = np.divmod(np.arange(n_det * n_det), n_det)
    out = np.zeros((n_t, n_r * n_c))
    for it in range(n_t):
        pattern, pixel, counts = tilt_entries(ds, it)
        c0 = _tilt_centre(pixel, counts, n_det)
        r = np.hypot(rr - c0[0], cc - c0[1])
        w = ((r >= inner_px) & (r <= outer_px)).astype(float)
        if exclude_bragg:
            total = np.bincount(pixel, weights=counts, minlength=n_det * n_det)
            w *= ~bragg_pixels(total.reshape(n_det, n_det)).ravel()
        out[it] = np.bincount(pattern, weights=counts * w[pixel], minlength=n_r * n_c)
    return out.reshape(n_t, n_r, n_c)


def _tilt_centre(pixel: np.ndarray, counts: np.ndarray, n_det: int) -> np.ndarray:
    """Direct-beam position (row, col) of a tilt: brightest pixel of the summed pattern."""
    total = np.bincount(pixel, weights=counts, minlength=n_det * n_det)
    return np.array(divmod(int(np.argmax(total)), n_det), float)


def beam_centres(
    pattern: np.ndarray,
    pixel: np.ndarray,
    counts: np.ndarray,
    n_pat: int,
    n_det: int,
    radius: float,
) -> np.ndarray:
    """Per-pattern direct-beam centre of mass (n_pat, 2) [px] near the tilt's beam (``radius``)."""
    c0 = _tilt_centre(pixel, counts, n_det)
    rr, cc = np.divmod(pixel, n_det)
    near = np.hypot(rr - c0[0], cc - c0[1]) <= radius
    w = counts * near
    tot = np.bincount(pattern, weights=w, minlength=n_pat)
    r_c = np.bincount(pattern, weights=w * rr, minlength=n_pat) / np.maximum(tot, 1e-12)
    c_c = np.bincount(pattern, weights=w * cc, minlength=n_pat) / np.maximum(tot, 1e-12)
    out = np.column_stack([r_c, c_c])
    out[tot <= 0] = c0
    return out


def sum_patterns(
    pattern: np.ndarray,
    pixel: np.ndarray,
    counts: np.ndarray,
    select: np.ndarray,
    n_det: int,
    shift: np.ndarray | None = None,
) -> np.ndarray:
    """Sum the selected patterns of one tilt into a (n_det, n_det) frame.

    Parameters
    ----------
    pattern, pixel, counts : (m,) arrays from :func:`tilt_entries`
    select : (n_pat,) bool
        Patterns summed.
    n_det : int
    shift : (n_pat, 2) int, optional
        Integer (row, col) shift applied to each pattern (direct-beam re-centring).
    """
    keep = select[pattern]
    pix, cnt = pixel[keep], counts[keep]
    if shift is not None:
        rr, cc = np.divmod(pix, n_det)
        s = shift[pattern[keep]]
        rr, cc = rr + s[:, 0], cc + s[:, 1]
        ok = (rr >= 0) & (rr < n_det) & (cc >= 0) & (cc < n_det)
        pix, cnt = (rr * n_det + cc)[ok], cnt[ok]
    return np.bincount(pix, weights=cnt, minlength=n_det * n_det).reshape(n_det, n_det)
