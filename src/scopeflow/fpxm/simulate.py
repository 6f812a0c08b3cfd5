"""Simulated FP-DFXM stacks of a ferroelectric film with known truth (the ``simulate`` stage).

Chain: domain structure -> P(r) -> electrostrictive eigenstrain -> elastic displacement u(r)
(:mod:`scopeflow.fpxm.specimen`) -> Bragg exit field ψ_G = ρ exp(i G·u) of one reflection in the
thin-slab projection, referenced to the lattice of a reference region (the rocking angle is set
on its Bragg peak) -> FP-DFXM image stack (:mod:`scopeflow.fpxm.forward`) with a Gaussian CRL
pupil, Zernike aberrations, partially coherent illumination modes, detector blur, shift errors
and Poisson noise (Carlsen et al., Opt. Express 30 (2022), doi:10.1364/OE.447657; CRL optics of
Simons et al., J. Synchrotron Rad. 24, 392 (2017), doi:10.1107/S160057751602049X).

ρ is the Bragg weight of the imaged variant (c domains, P ∥ ±z for G ∥ z): a-domains diffract
elsewhere (their lattice is ~1e-2 away), so they are dark. The field is band-limited to the
synthetic aperture of the nominal shift grid where the CRL amplitude exceeds 0.2 (what a
reconstruction can recover; see :func:`synthetic_aperture_mask`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import xarray as xr
from scipy import ndimage

from scopeflow.fpxm import lgd, specimen
from scopeflow.fpxm.forward import (
    FPGeometry,
    detector_mtf,
    intensities,
    object_to_spectrum,
    pupil_stack,
    spectrum_to_object,
)
from scopeflow.fpxm.options import SimulateOptions
from scopeflow.optics.wavelength import xray_wavelength

__all__ = [
    "simulate",
    "reflection_vector",
    "shift_grid_mrad",
    "coherence_modes",
    "disc_overlap",
    "synthetic_aperture_mask",
]


def reflection_vector(hkl, a0_nm: float) -> tuple[np.ndarray, float]:
    """Unit vector of G in the image plane (row = z, col = x) and |G| [rad/nm].

    Raises
    ------
    ValueError
        If k != 0 (G would leave the imaged (x, z) plane) or hkl = 0.
    """
    h, k, l_ = (int(v) for v in hkl)
    if len(tuple(hkl)) != 3 or k != 0 or (h == 0 and l_ == 0):
        raise ValueError(f"reflection {tuple(hkl)}: need hkl with k = 0 and (h, l) != 0")
    mag = 2 * math.pi * math.hypot(h, l_) / a0_nm
    return np.array([l_, h], float) / math.hypot(h, l_), mag


def shift_grid_mrad(n: int, step_mrad: float) -> np.ndarray:
    """Square grid of pupil shifts (n*n, 2) [mrad], row-major, centred on zero."""
    v = (np.arange(n) - (n - 1) / 2) * step_mrad
    rr, cc = np.meshgrid(v, v, indexing="ij")
    return np.stack([rr.ravel(), cc.ravel()], -1)


def coherence_modes(n_modes: int, sigma_mrad: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite samples of a Gaussian incident divergence along rows.

    Returns
    -------
    offsets : (M, 2) [mrad]
    weights : (M,) summing to 1
    """
    if n_modes == 1 or sigma_mrad == 0:
        return np.zeros((1, 2)), np.ones(1)
    x, w = np.polynomial.hermite.hermgauss(n_modes)
    offsets = np.zeros((n_modes, 2))
    offsets[:, 0] = math.sqrt(2) * sigma_mrad * x
    return offsets, w / w.sum()


def disc_overlap(step: float, radius: float) -> float:
    """Area overlap fraction of two discs of radius ``radius`` whose centres are ``step`` apart."""
    d = min(step / (2 * radius), 1.0)
    return float(2 / math.pi * (math.acos(d) - d * math.sqrt(1 - d * d)))


def synthetic_aperture_mask(geom: FPGeometry, shifts_px: np.ndarray, min_amplitude: float = 0.2):
    """(N, N) float in [0, 1], FFT order: the recoverable band of a shift grid.

    The union over shifts of the discs where the Gaussian CRL amplitude exceeds ``min_amplitude``
    (and inside the physical aperture), with a 4-px cos² roll-off inside the edge. Components the
    objective transmits with less amplitude are lost in the noise at any practical dose.
    """
    n = geom.n_object
    theta = 2 * geom.na_rms * np.sqrt(np.log(1 / min_amplitude))  # amplitude = min_amplitude
    r2 = min(theta, geom.aperture_rad) / (geom.wavelength_nm * geom.dq)
    r1 = r2 - 4.0
    f = np.fft.fftfreq(n, 1.0 / n)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    mask = np.zeros((n, n))
    for sy, sx in shifts_px:
        dy = (fy - sy + n / 2) % n - n / 2
        dx = (fx - sx + n / 2) % n - n / 2
        t = np.clip((np.hypot(dy, dx) - r1) / (r2 - r1), 0.0, 1.0)
        mask = np.maximum(mask, np.cos(0.5 * np.pi * t) ** 2)
    return mask


def _variant_weight(p: np.ndarray) -> np.ndarray:
    """Bragg weight of the c variant: cos² of the angle between P and ±z."""
    return np.cos(np.arctan2(np.abs(p[0]), np.abs(p[2]))) ** 2


def _texture(n: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth scattering-strength texture (film thickness), mean 1, about ±5 %."""
    t = ndimage.gaussian_filter(rng.standard_normal((n, n)), 8.0, mode="wrap")
    return 1.0 + 0.05 * t / t.std()


def _plane_fit(values: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Least-squares plane a + b row + c col over ``box``, evaluated on the whole grid."""
    r0, r1, c0, c1 = box
    rr, cc = np.mgrid[0 : values.shape[0], 0 : values.shape[1]].astype(float)
    a = np.stack(
        [np.ones((r1 - r0) * (c1 - c0)), rr[r0:r1, c0:c1].ravel(), cc[r0:r1, c0:c1].ravel()]
    )
    coef, *_ = np.linalg.lstsq(a.T, values[r0:r1, c0:c1].ravel(), rcond=None)
    return coef[0] + coef[1] * rr + coef[2] * cc


def _state_fields(p0, efield, opts, c, tk, g_img, box):
    """Polarization, strain, tilt, displacement along G and phase for one applied field."""
    if efield != 0.0:
        flat = torch.from_numpy(np.moveaxis(p0, 0, -1).reshape(-1, 3))
        pe = lgd.local_equilibrium(flat, tk, c, efield=(0.0, 0.0, efield))
        p = np.moveaxis(pe.numpy().reshape(p0.shape[1], p0.shape[2], 3), -1, 0)
    else:
        p = p0
    el = specimen.elastic_fields(p, opts.pixel_size_nm, c)
    gz, gx = g_img
    u_g = gx * el["u"][0] + gz * el["u"][1]  # nm
    s = el["strain"]  # (x, z) basis
    strain_g = gx * gx * s[0, 0] + 2 * gx * gz * s[0, 1] + gz * gz * s[1, 1]
    # tilt across G: derivative of u_G along t = (gx, -gz) rotated in-plane (row, col) = (-gx, gz)
    d_row, d_col = np.gradient(u_g, opts.pixel_size_nm)
    tilt = -gx * d_row + gz * d_col
    u_ref = u_g - _plane_fit(u_g, box)
    return p, strain_g, tilt, u_ref


def simulate(inputs: list, opts: SimulateOptions) -> xr.Dataset:
    """The ``simulate`` stage: an FP-DFXM stack (kind ``fpxm.stack``) with ground truth.

    Returns
    -------
    xarray.Dataset
        ``image (efield, shot, row, col)`` [photons], ``pupil_shift (shot, axis)`` [mrad]
        (nominal), ``mode_offset (mode, axis)`` [mrad], ``mode_weight (mode)``; truths
        ``true_field_re/_im (efield, obj_row, obj_col)``, ``true_pupil_re/_im (k_row, k_col)``,
        ``true_shift (shot, axis)`` [mrad], ``true_strain`` and ``true_tilt`` (efield, obj_row,
        obj_col), ``true_displacement`` (u along G, referenced) [nm], ``true_polarization
        (efield, component, obj_row, obj_col)`` [C/m²], ``true_interior (obj_row, obj_col)``;
        scalar truths in ``attrs["ground_truth"]``.
    """
    if inputs:
        raise ValueError("fpxm simulate takes no input stores")
    if len(opts.zernike_noll) != len(opts.zernike_rad):
        raise ValueError(
            f"simulate.zernike_noll ({len(opts.zernike_noll)}) and zernike_rad "
            f"({len(opts.zernike_rad)}) must have the same length"
        )
    rng = np.random.default_rng(opts.seed)
    c = lgd.load_lgd(opts.material)
    tk = opts.temperature_c + 273.15
    ps = lgd.spontaneous_polarization(tk, c)
    n_obj, n_img = opts.n_object, opts.n_object // opts.upsampling
    lam = xray_wavelength(opts.energy_ev)
    geom = FPGeometry(
        n_obj, n_img, opts.pixel_size_nm, lam, opts.na_rms, opts.aperture_mrad * 1e-3, 0.0
    )
    geom = FPGeometry(**{**geom.__dict__, "edge_width": 1.0 / geom.aperture_px})
    g_img, g_mag = reflection_vector(opts.reflection, c["lattice_a0_nm"])

    p0, info = specimen.domain_structure(
        opts.structure,
        n_obj,
        opts.pixel_size_nm,
        ps,
        wall_width_nm=opts.wall_width_nm,
        needle=opts.needle,
        nanoregion=opts.nanoregion,
    )
    interior = specimen.interior_mask(p0, info["features"], opts.interior_margin_px)
    # the cell is periodic but the Bragg phase carries the mean-strain ramp relative to the
    # reference lattice, which jumps at the cell edge: the edge band is no domain interior
    edge = int(np.ceil(opts.interior_margin_px))
    interior[:edge] = interior[-edge:] = False
    interior[:, :edge] = interior[:, -edge:] = False
    box = specimen.reference_box(interior, 12)
    rho = _variant_weight(p0) * _texture(n_obj, rng)
    efields = (opts.field_mv_per_m, -opts.field_mv_per_m) if opts.field_mv_per_m > 0 else (0.0,)

    nominal = shift_grid_mrad(opts.shift_grid, opts.shift_step_mrad)
    # zero-mean errors: a common offset of all shifts is a uniform strain/tilt phase ramp, i.e.
    # a redefinition of the reference lattice (the pupil centre defines the Bragg condition)
    error = rng.normal(0.0, opts.shift_error_mrad, nominal.shape)
    true_shift = nominal + error - error.mean(0)
    mode_off, mode_w = coherence_modes(opts.coherence_modes, opts.divergence_mrad)
    band = synthetic_aperture_mask(geom, nominal / geom.mrad_per_px)
    coeffs = torch.tensor(opts.zernike_rad, dtype=torch.float64)
    pupils = pupil_stack(
        geom,
        torch.from_numpy(true_shift / geom.mrad_per_px),
        torch.from_numpy(mode_off / geom.mrad_per_px),
        zernike_noll=tuple(opts.zernike_noll),
        zernike_coeffs=coeffs,
    )
    mtf = detector_mtf(n_img, opts.detector_blur_px, dtype=torch.float64)

    states = [_state_fields(p0, e * 1e6, opts, c, tk, g_img, box) for e in efields]
    fields, images = [], []
    for _p, _strain, _tilt, u_ref in states:
        psi = rho * np.exp(1j * g_mag * u_ref)
        spec = object_to_spectrum(torch.from_numpy(psi), n_img) * torch.from_numpy(band)
        fields.append(spectrum_to_object(spec, n_img).numpy())
        images.append(
            intensities(
                spec,
                pupils,
                torch.from_numpy(true_shift / geom.mrad_per_px),
                torch.from_numpy(mode_w),
                mtf,
            ).numpy()
        )
    images = np.clip(np.stack(images), 0.0, None)
    scale = 1.0 if opts.photons_per_px is None else opts.photons_per_px / images.mean()
    counts = images * scale
    if opts.photons_per_px is not None:
        counts = rng.poisson(counts).astype(np.float64)
    true_pupil = pupil_stack(
        geom,
        torch.zeros(1, 2, dtype=torch.float64),
        torch.zeros(1, 2, dtype=torch.float64),
        zernike_noll=tuple(opts.zernike_noll),
        zernike_coeffs=coeffs,
    )[0, 0]
    true_pupil = torch.fft.fftshift(true_pupil).numpy()
    return _assemble(
        opts,
        geom,
        g_img,
        g_mag,
        ps,
        tk,
        c,
        efields,
        counts,
        scale,
        nominal,
        true_shift,
        mode_off,
        mode_w,
        np.stack(fields),
        true_pupil,
        states,
        interior,
        box,
    )


def _assemble(
    opts,
    geom,
    g_img,
    g_mag,
    ps,
    tk,
    c,
    efields,
    counts,
    scale,
    nominal,
    true_shift,
    mode_off,
    mode_w,
    fields,
    true_pupil,
    states,
    interior,
    box,
) -> xr.Dataset:
    n_obj, n_img = geom.n_object, geom.n_image
    obj = (np.arange(n_obj) - n_obj / 2) * opts.pixel_size_nm
    pix_img = opts.pixel_size_nm * opts.upsampling
    img = (np.arange(n_img) - n_img / 2) * pix_img
    k_mrad = (np.arange(n_img) - n_img // 2) * geom.mrad_per_px
    step_px = opts.shift_step_mrad / geom.mrad_per_px
    coords = {
        "efield": ("efield", np.array(efields, float), {"units": "MV/m"}),
        "shot": ("shot", np.arange(len(nominal)), {"units": "1"}),
        "axis": ("axis", ["row", "col"]),
        "mode": ("mode", np.arange(len(mode_w)), {"units": "1"}),
        "row": ("row", img, {"units": "nm"}),
        "col": ("col", img, {"units": "nm"}),
        "obj_row": ("obj_row", obj, {"units": "nm"}),
        "obj_col": ("obj_col", obj, {"units": "nm"}),
        "k_row": ("k_row", k_mrad, {"units": "mrad"}),
        "k_col": ("k_col", k_mrad, {"units": "mrad"}),
        "component": ("component", ["x", "y", "z"]),
    }
    obj3 = ("efield", "obj_row", "obj_col")
    data = {
        "image": (
            ("efield", "shot", "row", "col"),
            counts.astype(np.float32),
            {"units": "photons"},
        ),
        "pupil_shift": (("shot", "axis"), nominal, {"units": "mrad"}),
        "mode_offset": (("mode", "axis"), mode_off, {"units": "mrad"}),
        "mode_weight": (("mode",), mode_w, {"units": "1"}),
        "true_field_re": (obj3, fields.real.astype(np.float32), {"units": "1"}),
        "true_field_im": (obj3, fields.imag.astype(np.float32), {"units": "1"}),
        "true_pupil_re": (("k_row", "k_col"), true_pupil.real.astype(np.float32), {"units": "1"}),
        "true_pupil_im": (("k_row", "k_col"), true_pupil.imag.astype(np.float32), {"units": "1"}),
        "true_shift": (("shot", "axis"), true_shift, {"units": "mrad"}),
        "true_strain": (obj3, np.stack([s[1] for s in states]), {"units": "1"}),
        "true_tilt": (obj3, np.stack([s[2] for s in states]), {"units": "rad"}),
        "true_displacement": (obj3, np.stack([s[3] for s in states]), {"units": "nm"}),
        "true_polarization": (
            ("efield", "component", "obj_row", "obj_col"),
            np.stack([s[0] for s in states]),
            {"units": "C/m^2"},
        ),
        "true_interior": (("obj_row", "obj_col"), interior, {"units": "1"}),
    }
    r0, r1, c0, c1 = box
    ref_strain = [float(s[1][r0:r1, c0:c1].mean()) for s in states]
    overlap = disc_overlap(step_px, geom.aperture_px)
    attrs = {
        "technique": "fpxm",
        "energy_ev": opts.energy_ev,
        "wavelength_nm": geom.wavelength_nm,
        "reflection": list(opts.reflection),
        "lattice_a0_nm": c["lattice_a0_nm"],
        "g_unit_rowcol": g_img.tolist(),
        "g_magnitude_rad_per_nm": g_mag,
        "pixel_size_nm": opts.pixel_size_nm,
        "image_pixel_size_nm": pix_img,
        "upsampling": opts.upsampling,
        "na_rms": opts.na_rms,
        "aperture_mrad": opts.aperture_mrad,
        "detector_blur_px": opts.detector_blur_px,
        "photons_per_px": opts.photons_per_px,
        "intensity_scale": scale,
        "shift_step_mrad": opts.shift_step_mrad,
        "overlap_aperture": overlap,
        "overlap_note": "area overlap of neighbouring physical-aperture discs",
        "material": opts.material,
        "temperature_k": tk,
        "reference_region": [int(v) for v in box],
        "reference_note": (
            "phase referenced to the lattice of reference_region (rocking angle on its Bragg "
            "peak): uniform strain/tilt are degenerate with a pupil offset"
        ),
        "ground_truth": {
            "zernike_noll": list(opts.zernike_noll),
            "zernike_rad": list(opts.zernike_rad),
            "spontaneous_polarization": ps,
            "reference_strain": ref_strain,
            "shift_error_mrad": opts.shift_error_mrad,
            "structure": opts.structure,
        },
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)
