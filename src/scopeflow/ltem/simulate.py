"""Simulated Lorentz-TEM through-focus series with ground truth.

Physics, on a grid ``oversample`` times finer than the output (then binned down, so a
reconstruction never uses the simulator's exact discretisation):

- magnetic phase of a film with in-plane magnetization by the Fourier-space method of
  Mansuripur, J. Appl. Phys. 69, 2455 (1991), doi:10.1063/1.348682, in the form
  ``phi_m(k) = -i (B0 t / (2 phi0)) (k_y m_x(k) - k_x m_y(k)) / k^2`` (k in cycles/nm,
  ``phi0 = h / 2e``), which is exactly ``B_x t = (hbar/e) d phi/dy``,
  ``B_y t = -(hbar/e) d phi/dx`` for the projected induction ``B0 t (m - k^(k^.m))``; a tilt
  about the column axis is modelled by projecting m on the image plane and scaling t by
  ``1/cos(tilt)`` (small-tilt linear superposition, foreshortening neglected);
- electrostatic phase ``sigma V0 t(r)`` (mean inner potential, thickness variation, patterned
  disc) and optional amplitude ``exp(-t / (2 lambda_in))``;
- images through :func:`scopeflow.optics.transfer.transfer_function` with Cs, astigmatism and
  the spatial-coherence envelope (theta_c); the focal spread is integrated *incoherently* by
  7-point Gauss-Hermite quadrature (the reconstruction uses the envelope instead);
- per-image misalignment: rotation and magnification of the specimen maps (bicubic on the fine
  grid, magnification with Fresnel scaling ``df -> m^2 df``) and an exact Fourier-ramp shift;
  Gaussian detector blur, ``oversample x oversample`` binning, Poisson noise.

Frame convention (shared with :mod:`scopeflow.ltem.model`): the reference image (smallest
``|defocus|``, first on ties) is not misaligned and its defocus has no error; the shifts,
rotations and log-magnifications of the other images have zero mean. The in-focus image of a
phase object has almost no contrast, so it cannot fix the frame; the mean frame of the
defocused images does, and the recovered phase is then directly comparable to the truth.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import xarray as xr

from scopeflow.ltem.options import SimulateOptions
from scopeflow.ltem.textures import TEXTURES
from scopeflow.optics.fourier import freq_grid
from scopeflow.optics.propagate import coherent_image
from scopeflow.optics.transfer import transfer_function
from scopeflow.optics.warp import affine_warp, fourier_shift_kernel
from scopeflow.optics.wavelength import (
    FLUX_QUANTUM_T_NM2,
    electron_wavelength,
    interaction_constant,
)

__all__ = [
    "mansuripur_phase",
    "projected_induction",
    "bin_mean",
    "simulate_images",
    "simulate_series",
]

log = logging.getLogger(__name__)

MU0 = 4e-7 * np.pi  # T m / A

DEFOCUS_CONVENTION = (
    "overfocus_positive: defocus > 0 means the exit wave propagated downstream by defocus "
    "(Fresnel kernel exp(-i pi lambda df q^2))"
)


def _kgrid(shape, pixel_size):
    ky = np.fft.fftfreq(shape[0], d=pixel_size)[:, None]
    kx = np.fft.fftfreq(shape[1], d=pixel_size)[None, :]
    k2 = kx**2 + ky**2
    k2[0, 0] = 1.0  # the k = 0 term is set to zero below
    return ky, kx, k2


def mansuripur_phase(mx, my, b0_t_tnm: float, pixel_size: float) -> np.ndarray:
    """Magnetic phase of a thin film (Mansuripur 1991, doi:10.1063/1.348682).

    Parameters
    ----------
    mx, my : (rows, cols) ndarray
        In-plane magnetization components (unit vector times any local weight such as a
        relative thickness).
    b0_t_tnm : float [T nm]
        Saturation induction times film thickness, ``mu0 Ms t``.
    pixel_size : float [nm]

    Returns
    -------
    (rows, cols) ndarray [rad], zero mean (periodic boundary)
    """
    ky, kx, k2 = _kgrid(mx.shape, pixel_size)
    fx, fy = np.fft.fft2(mx), np.fft.fft2(my)
    ft = -1j * b0_t_tnm / (2 * FLUX_QUANTUM_T_NM2) * (ky * fx - kx * fy) / k2
    ft[0, 0] = 0.0
    return np.fft.ifft2(ft).real


def projected_induction(mx, my, b0_t_tnm: float, pixel_size: float):
    """Projected in-plane induction ``B t = B0 t (m - k^ (k^ . m))`` of a thin film.

    Returns
    -------
    bx_t, by_t : (rows, cols) ndarray [T nm], zero mean
    """
    ky, kx, k2 = _kgrid(mx.shape, pixel_size)
    fx, fy = np.fft.fft2(mx), np.fft.fft2(my)
    div = (kx * fx + ky * fy) / k2
    bx, by = fx - kx * div, fy - ky * div
    bx[0, 0] = by[0, 0] = 0.0
    return b0_t_tnm * np.fft.ifft2(bx).real, b0_t_tnm * np.fft.ifft2(by).real


def bin_mean(a: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor x factor`` blocks of the last two axes."""
    if factor == 1:
        return a
    *lead, r, c = a.shape
    return a.reshape(*lead, r // factor, factor, c // factor, factor).mean(axis=(-3, -1))


def _smooth_random(shape, pixel_size, corr_nm, rng):
    ky, kx, _ = _kgrid(shape, pixel_size)
    white = np.fft.fft2(rng.standard_normal(shape))
    field = np.fft.ifft2(white * np.exp(-2 * (np.pi * corr_nm) ** 2 * (kx**2 + ky**2))).real
    return (field - field.mean()) / (field.std() + 1e-30)


def specimen(opts: SimulateOptions, rng: np.random.Generator) -> dict:
    """Magnetization, thickness and the exit-wave phases/amplitude on the fine grid.

    Returns
    -------
    dict with (rows, cols) float64 arrays on the fine grid: ``phase_m``, ``phase_e`` [rad],
    ``amplitude``, ``bx_t``, ``by_t`` [T nm], ``thickness`` [nm]; and the fine ``pixel_size``.
    """
    n = opts.size * opts.oversample
    px = opts.pixel_size_nm / opts.oversample
    if opts.chirality == 0 or opts.polarity == 0:
        raise ValueError("simulate: chirality and polarity must be +1 or -1")
    mx, my, mz, mask = TEXTURES[opts.texture](
        (n, n),
        px,
        radius_nm=opts.radius_nm,
        wall_width_nm=opts.wall_width_nm,
        chirality=opts.chirality,
        polarity=opts.polarity,
        disc_radius_nm=opts.disc_radius_nm,
        core_radius_nm=opts.core_radius_nm,
        lattice_constant_nm=opts.lattice_constant_nm,
        period_nm=opts.period_nm,
        stripe_angle_deg=opts.stripe_angle_deg,
    )
    rel_t = mask.copy()
    if opts.thickness_variation > 0:
        rel_t *= 1 + opts.thickness_variation * _smooth_random(
            (n, n), px, opts.thickness_correlation_nm, rng
        )
    tilt = np.deg2rad(opts.tilt_deg)
    if opts.texture == "neel_skyrmion" and tilt == 0:
        log.warning("a Néel skyrmion has no magnetic phase at zero tilt: set tilt_deg")
    t_eff = opts.thickness_nm / np.cos(tilt)
    m_img_x = mx * rel_t
    m_img_y = (my * np.cos(tilt) - mz * np.sin(tilt)) * rel_t
    b0_t = MU0 * opts.ms_a_per_m * t_eff
    phase_m = mansuripur_phase(m_img_x, m_img_y, b0_t, px)
    bx_t, by_t = projected_induction(m_img_x, m_img_y, b0_t, px)
    thickness = t_eff * rel_t
    phase_e = interaction_constant(opts.energy_ev) * opts.mip_v * thickness
    amplitude = np.ones_like(thickness)
    if opts.inelastic_mfp_nm:
        amplitude = np.exp(-thickness / (2 * opts.inelastic_mfp_nm))
    return {
        "phase_m": phase_m,
        "phase_e": phase_e,
        "amplitude": amplitude,
        "bx_t": bx_t,
        "by_t": by_t,
        "thickness": thickness,
        "pixel_size": px,
        "b0_t": b0_t,
    }


def reference_index(defocus) -> int:
    """Index of the reference image: smallest ``|defocus|``, first on ties."""
    return int(np.argmin(np.abs(np.asarray(defocus, dtype=float))))


def draw_misalignment(opts: SimulateOptions, rng: np.random.Generator) -> dict:
    """Random true defocus, shifts, rotations, magnifications (module docstring's frame).

    Each is uniform in +- its option (defocus relative), then the shifts, rotations and
    log-magnifications of the non-reference images are made zero-mean.

    Returns
    -------
    dict: ``defocus`` (n,) [nm], ``shift`` (n, 2) [output px], ``rotation`` (n,) [deg],
    ``magnification`` (n,)
    """
    nominal = np.asarray(opts.defocus_nm, dtype=float)
    n = nominal.size
    ref = reference_index(nominal)
    u = rng.uniform(-1, 1, size=(n, 5))
    others = np.arange(n) != ref
    # frame convention shared with the reconstruction: zero mean over the non-reference images
    u[others, 1:] -= u[others, 1:].mean(axis=0)
    u[ref] = 0.0
    return {
        "defocus": nominal * (1 + opts.defocus_error_rel * u[:, 0]),
        "shift": opts.shift_px * u[:, 1:3],
        "rotation": opts.rotation_deg * u[:, 3],
        "magnification": np.exp(opts.magnification_spread * u[:, 4]),
    }


def simulate_images(
    phase: np.ndarray,
    amplitude: np.ndarray,
    pixel_size: float,
    opts: SimulateOptions,
    mis: dict,
    rng: np.random.Generator,
) -> np.ndarray:
    """Through-focus images from a fine-grid exit wave (module docstring).

    Parameters
    ----------
    phase, amplitude : (rows_f, cols_f) ndarray
        Exit wave on the fine grid [rad], [1].
    pixel_size : float [nm]
        Fine-grid pixel size.
    opts : SimulateOptions
    mis : dict
        From :func:`draw_misalignment`.
    rng : numpy.random.Generator

    Returns
    -------
    (n_defocus, size, size) float32
        Counts (e/px) when ``opts.dose`` > 0, else intensity normalised to the incident beam.
    """
    f = opts.oversample
    lam = electron_wavelength(opts.energy_ev)
    dt = torch.float64
    n_img = len(mis["defocus"])
    mag = torch.as_tensor(mis["magnification"], dtype=dt)
    maps = torch.stack((torch.as_tensor(phase), torch.as_tensor(np.log(amplitude))))
    maps = affine_warp(
        maps[None].expand(n_img, 2, *phase.shape).contiguous(),
        None,
        torch.as_tensor(mis["rotation"], dtype=dt),
        mag,
    )
    qy, qx = freq_grid(phase.shape, pixel_size, dtype=dt)
    ramp = fourier_shift_kernel(
        *freq_grid(phase.shape, 1.0, dtype=dt), torch.as_tensor(mis["shift"] * f, dtype=dt)
    )
    nodes, weights = np.polynomial.hermite_e.hermegauss(7)
    weights = weights / weights.sum()
    images = []
    for k, df in enumerate(mis["defocus"]):
        wave_ft = torch.fft.fft2(torch.polar(torch.exp(maps[k, 1]), maps[k, 0]))
        img = torch.zeros(phase.shape, dtype=dt)
        for node, w in zip(nodes, weights, strict=True):
            t = transfer_function(
                qy,
                qx,
                lam,
                (df + opts.defocus_spread_nm * node) * float(mag[k]) ** 2,
                opts.cs_mm * 1e6,
                opts.theta_c_rad,
                0.0,
                opts.astig_nm,
                np.deg2rad(opts.astig_angle_deg),
                dtype=torch.complex128,
            )
            img += w * coherent_image(wave_ft, t * ramp[k])
        images.append(img)
    stack = torch.stack(images)
    if opts.detector_blur_px > 0:
        sigma = opts.detector_blur_px * opts.pixel_size_nm
        mtf = torch.exp(-2 * (np.pi * sigma) ** 2 * (qx**2 + qy**2))
        stack = torch.fft.ifft2(torch.fft.fft2(stack) * mtf).real
    out = bin_mean(stack.numpy(), f)
    if opts.dose:
        out = rng.poisson(np.clip(out, 0, None) * opts.dose).astype(np.float64)
    return out.astype(np.float32)


def simulate_series(inputs: list, opts: SimulateOptions) -> xr.Dataset:
    """The ``simulate`` stage: a through-focus series (kind ``ltem.series``) with ground truth.

    Parameters
    ----------
    inputs : list
        Empty (a source stage).
    opts : SimulateOptions

    Returns
    -------
    xarray.Dataset
        ``image (defocus, row, col)`` float32 [counts or normalised intensity]; with
        ``opts.flip`` also ``image_flip (defocus, row, col)``: the flipped-sample series
        (magnetic phase reversed, images already un-mirrored, its own misalignment and noise).
        Truths on the output grid: ``true_phase_m``, ``true_phase_e``, ``true_amplitude``
        [rad, rad, 1], ``true_bx_tnm``, ``true_by_tnm`` [T nm], ``true_defocus_nm (defocus)``,
        ``true_shift_px (defocus, axis)``, ``true_rotation_deg (defocus)``,
        ``true_magnification (defocus)`` (``*_flip`` for the flipped series); scalars in
        ``attrs["ground_truth"]``.
    """
    del inputs
    if opts.size % 2:
        raise ValueError(f"simulate: size must be even, got {opts.size}")
    rng = np.random.default_rng(opts.seed)
    spec = specimen(opts, rng)
    f = opts.oversample
    series = {"": (spec["phase_e"] + spec["phase_m"], draw_misalignment(opts, rng))}
    if opts.flip:
        series["_flip"] = (spec["phase_e"] - spec["phase_m"], draw_misalignment(opts, rng))
    n, px = opts.size, opts.pixel_size_nm
    coords = {
        "defocus": ("defocus", np.asarray(opts.defocus_nm, float), {"units": "nm"}),
        "row": ("row", np.arange(n) * px, {"units": "nm"}),
        "col": ("col", np.arange(n) * px, {"units": "nm"}),
        "axis": ("axis", np.array(["row", "col"]), {"units": "1"}),
    }
    rc = ("row", "col")
    data_vars = {
        "true_phase_m": (rc, bin_mean(spec["phase_m"], f), {"units": "rad"}),
        "true_phase_e": (rc, bin_mean(spec["phase_e"], f), {"units": "rad"}),
        "true_amplitude": (rc, bin_mean(spec["amplitude"], f), {"units": "1"}),
        "true_bx_tnm": (rc, bin_mean(spec["bx_t"], f), {"units": "T nm"}),
        "true_by_tnm": (rc, bin_mean(spec["by_t"], f), {"units": "T nm"}),
    }
    truth_mis = {}
    for suffix, (phase, mis) in series.items():
        img = simulate_images(phase, spec["amplitude"], spec["pixel_size"], opts, mis, rng)
        units = "counts (e/px)" if opts.dose else "intensity / incident"
        data_vars[f"image{suffix}"] = (("defocus", *rc), img, {"units": units})
        data_vars[f"true_defocus_nm{suffix}"] = ("defocus", mis["defocus"], {"units": "nm"})
        data_vars[f"true_shift_px{suffix}"] = (("defocus", "axis"), mis["shift"], {"units": "px"})
        data_vars[f"true_rotation_deg{suffix}"] = ("defocus", mis["rotation"], {"units": "deg"})
        data_vars[f"true_magnification{suffix}"] = ("defocus", mis["magnification"], {"units": "1"})
        truth_mis[f"defocus_nm{suffix}"] = [float(d) for d in mis["defocus"]]
    for name, (dims, arr, attrs) in list(data_vars.items()):
        data_vars[name] = (
            dims,
            np.asarray(arr, np.float32 if "image" in name else np.float64),
            attrs,
        )
    attrs = {
        "energy_ev": float(opts.energy_ev),
        "wavelength_nm": electron_wavelength(opts.energy_ev),
        "pixel_size_nm": float(px),
        "defocus_nm": [float(d) for d in opts.defocus_nm],
        "defocus_sign_convention": DEFOCUS_CONVENTION,
        "cs_mm": float(opts.cs_mm),
        "theta_c_rad": float(opts.theta_c_rad),
        "defocus_spread_nm": float(opts.defocus_spread_nm),
        "thickness_nm": float(opts.thickness_nm / np.cos(np.deg2rad(opts.tilt_deg))),
        "dose": float(opts.dose or 0.0),
        "flip": bool(opts.flip),
        "reference_index": reference_index(opts.defocus_nm),
        "ground_truth": {
            "texture": opts.texture,
            "ms_a_per_m": float(opts.ms_a_per_m),
            "b0_t": float(MU0 * opts.ms_a_per_m),
            "b0_t_tnm": float(spec["b0_t"]),
            "astig_nm": float(opts.astig_nm),
            "astig_angle_deg": float(opts.astig_angle_deg),
            "tilt_deg": float(opts.tilt_deg),
            "detector_blur_px": float(opts.detector_blur_px),
            "oversample": int(f),
            **truth_mis,
        },
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
