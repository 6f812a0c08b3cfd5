"""Cell and tilt-axis refinement against the detector positions and rocking profiles of spots.

A reflection ``h`` of the reciprocal basis ``B*`` (rows ``a*, b*, c*`` in the specimen frame)
lies at ``g = R(theta; phi) B*^T h`` in the lab at tilt ``theta`` about the axis at ``phi``. For
a (nearly) parallel beam along ``z`` the diffracted wave leaves along ``k0 + g + s z``, so the
spot's detector offset from the direct beam is ``(g_x, g_y) / dk`` whatever the excitation
error ``s``: the two detector coordinates are the precise measurement (centroid error ~ spot
radius / sqrt(counts) pixels). The along-beam coordinate is not measured, and the detector
positions alone pin a lattice vector lying along the beam only through ``sin(theta)`` (0.3 %
scatter on its length over +-30 deg, the error that remained when merged 3D spot positions were
fitted). What does pin it is the rocking curve: a reflection seen on consecutive tilts has
partial intensities ``A_hkl exp(-pi s^2 / w^2)`` (kinematic rocking curve of width ``w`` ~ 1 /
thickness), so their ratios give each partial's ``s`` to a small fraction of ``w``.

``B*`` (9 parameters), ``phi`` and ``w`` are fitted by robust least squares (Huber loss) to (1)
the detector residuals of every indexed spot of every frame, weighted by centroid precision, and
(2) the square roots of the partial intensities against that Gaussian profile, each reflection's
amplitude ``A_hkl`` eliminated as its linear least-squares value (variable projection). Two
preliminary fits start it: detector residuals alone, then with a term ``s / sigma_s`` per spot
(the spot lies near the Ewald sphere at its tilt) whose spread gives the starting ``w``. The
profile fit is kept only if it raises the detector chi^2 by less than its 99.5 % quantile for
the fitted parameters (else the partials it fits are a neighbour's spots indexed by chance, and
the second fit is returned). This follows the frame-wise ("2D") refinement of 3D ED programs
that use the rocking curve of each reflection: Palatinus et al., Acta Cryst. B 75, 512 (2019),
doi:10.1107/S2052520619007534.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import chi2

from scopeflow.optics.kinematic import excitation_error
from scopeflow.tomo4d.geometry import tilt_rotations

__all__ = ["detector_residuals", "refine_detector"]


def detector_residuals(
    params: np.ndarray,
    hkl: np.ndarray,
    frame: np.ndarray,
    offset_px: np.ndarray,
    tilt_deg: np.ndarray,
    k_pixel: float,
    wavelength_a: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Detector residuals and excitation errors of indexed spots.

    Parameters
    ----------
    params : (10,) float
        reciprocal basis ``B*`` row-major (9) [1/Å] and tilt-axis angle ``phi`` [deg].
    hkl : (n, 3) int, frame : (n,) int
    offset_px : (n, 2) float [px] measured spot offset from the direct beam (row, col)
    tilt_deg : (frame,) float [deg]
    k_pixel : float [1/Å per px], wavelength_a : float [Å]

    Returns
    -------
    d_px : (n, 2) float [px] predicted minus measured (row, col), s : (n,) float [1/Å]
    """
    recip = params[:9].reshape(3, 3)
    rot = tilt_rotations(tilt_deg, float(params[9]))
    g_lab = np.einsum("nij,nj->ni", rot[frame], hkl @ recip)
    d_px = g_lab[:, [1, 0]] / k_pixel - offset_px
    return d_px, excitation_error(g_lab, wavelength_a)


def _huber_cost(z: np.ndarray, c: float) -> float:
    a = np.abs(z)
    return float(np.sum(np.where(a <= c, 0.5 * a**2, c * a - 0.5 * c**2)))


def refine_detector(
    spots: np.ndarray,
    centres: np.ndarray,
    tilt_deg: np.ndarray,
    hkl: np.ndarray,
    inlier: np.ndarray,
    basis: np.ndarray,
    axis_deg: float,
    k_pixel: float,
    wavelength_a: float,
    radius_px: float,
    huber_sigma: float = 2.0,
    fit_axis: bool = True,
) -> tuple[np.ndarray, float, dict]:
    """Refine the real basis and tilt axis on the spots' detector positions and rocking profiles.

    Parameters
    ----------
    spots : (n, 5) float (frame, row [px], col [px], intensity [counts], sigma [counts])
    centres : (frame, 2) float [px] direct beam per frame
    tilt_deg : (frame,) float [deg]
    hkl : (n, 3) int, inlier : (n,) bool from the 3D indexing
    basis : (3, 3) float [Å] starting real basis (specimen frame), axis_deg : float [deg]
    k_pixel : float [1/Å per px], wavelength_a : float [Å]
    radius_px : float [px] spot disk radius (a uniform disk's centroid has standard deviation
        ``radius / (2 sqrt(N))`` for ``N`` counts)
    huber_sigma : float
        residuals beyond this many standard deviations count linearly (neighbours' spots and
        overlaps indexed by chance do not pull the fit).
    fit_axis : bool
        refine the tilt-axis angle too (else it stays ``axis_deg``).

    Returns
    -------
    basis : (3, 3) float [Å], axis_deg : float [deg], info : dict with ``rms_px`` (detector
    RMS of the kept spots), ``width`` (rocking width ``w`` [1/Å]), ``n_spots`` and
    ``profile_used`` (False when the profile fit was rejected, see the module docstring). The
    inputs are returned unchanged when fewer than 12 spots are indexed or the fit fails.
    """
    sel = np.asarray(inlier, bool)
    info = {
        "rms_px": float("nan"),
        "width": float("nan"),
        "n_spots": int(sel.sum()),
        "profile_used": False,
    }
    if sel.sum() < 12 or np.linalg.matrix_rank(hkl[sel]) < 3:
        return np.asarray(basis, float), float(axis_deg), info
    sp = spots[sel]
    frame = sp[:, 0].astype(int)
    h = np.asarray(hkl[sel], float)
    offset = sp[:, 1:3] - centres[frame]
    counts = np.clip(sp[:, 3], 0.0, None)
    sigma_px = radius_px / (2.0 * np.sqrt(np.clip(counts, 1.0, None)))
    sigma_px = np.sqrt(sigma_px**2 + 0.05**2)  # floor: pixelation and the diffuse background
    root = np.sqrt(counts)
    # sqrt(counts) has Poisson sd 1/2; the summed frame mixes probes through different
    # thicknesses (rocking widths), so the Gaussian profile is good to ~10 % in intensity
    sigma_root = np.sqrt(0.25 + (0.05 * root) ** 2)
    refl = np.unique(hkl[sel], axis=0, return_inverse=True)[1].ravel()
    args = (h, frame, offset, tilt_deg, k_pixel, wavelength_a)
    n_geo = 10 if fit_axis else 9

    def full(p):
        return p[:10] if fit_axis else np.concatenate([p[:9], [axis_deg]])

    def fun(p, stage, sigma_s):
        d, s = detector_residuals(full(p), *args)
        r = [(d / sigma_px[:, None]).ravel()]
        if stage == 1:
            r.append(s / sigma_s)
        elif stage == 2:
            # rocking profile sqrt(I) = sqrt(A_hkl) exp(-pi s^2 / (2 w^2)), A_hkl eliminated
            # (the linear least-squares amplitude of each reflection's observations)
            e = np.exp(-np.pi * s**2 / (2.0 * np.exp(p[n_geo]) ** 2))
            amp = np.bincount(refl, root * e) / np.maximum(np.bincount(refl, e * e), 1e-300)
            r.append((root - amp[refl] * e) / sigma_root)
        return np.concatenate(r)

    def spread(p):
        s = detector_residuals(full(p), *args)[1]
        return 1.4826 * float(np.median(np.abs(s - np.median(s))))

    x0 = np.linalg.inv(basis).T.ravel()
    x0 = np.concatenate([x0, [axis_deg]]) if fit_axis else x0
    kw = {"loss": "huber", "f_scale": huber_sigma, "x_scale": "jac"}
    try:
        fit = least_squares(fun, x0, args=(0, 1.0), **kw)
        fit = least_squares(fun, fit.x, args=(1, max(spread(fit.x), 1e-6)), **kw)
        # Gaussian rocking curve exp(-pi s^2 / w^2): the spread of s is w / sqrt(2 pi)
        w0 = max(spread(fit.x), 1e-6) * np.sqrt(2.0 * np.pi)
        fit1 = np.concatenate([fit.x, [np.log(w0)]])
        fit = least_squares(fun, fit1, args=(2, 1.0), **kw)
        # the profiles may only move the fit within the detector data's confidence region: a
        # rise of the detector chi^2 beyond its 99.5 % quantile for the fitted parameters means
        # they fit partials that are not the target's (a neighbour's spots indexed by chance)
        rise = 2.0 * (
            _huber_cost(fun(fit.x, 0, 1.0), huber_sigma)
            - _huber_cost(fun(fit1, 0, 1.0), huber_sigma)
        )
        info["profile_used"] = bool(rise <= chi2.ppf(0.995, n_geo))
        x_end = fit.x if info["profile_used"] else fit1
    except (ValueError, np.linalg.LinAlgError):
        return np.asarray(basis, float), float(axis_deg), info
    x = full(x_end)
    recip = x[:9].reshape(3, 3)
    if not np.all(np.isfinite(x_end)) or abs(np.linalg.det(recip)) < 1e-12:
        return np.asarray(basis, float), float(axis_deg), info
    d, _ = detector_residuals(x, *args)
    keep = np.linalg.norm(d / sigma_px[:, None], axis=1) < 3 * huber_sigma
    info.update(
        rms_px=float(np.sqrt(np.mean(np.sum(d[keep] ** 2, axis=1)))),
        width=float(np.exp(x_end[n_geo])),
    )
    return np.linalg.inv(recip).T, float(x[9]), info
