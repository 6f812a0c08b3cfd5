"""Fourier-ptychographic recovery of the Bragg exit field (the ``reconstruct`` stage).

Loss: the amplitude (variance-stabilised Poisson) misfit ``Σ (sqrt(I_model) - sqrt(I_meas))²`` of
the full forward model of :mod:`scopeflow.fpxm.forward` (pupil, coherence modes, detector MTF),
differentiated by autograd and minimised by alternating L-BFGS blocks (strong-Wolfe line search):

- the object spectrum, in the preconditioned variable ``S sqrt(Σ_jm w_m |P_jm|² + δ)``: the
  metric in which a gradient step is the parallel alternating-projection FP update (Carlsen et
  al., Opt. Express 30 (2022), doi:10.1364/OE.447657; Zheng et al., Nat. Photonics 7, 739 (2013),
  doi:10.1038/nphoton.2013.187). The spectrum is held on the transmitted band (coverage above
  ``band_threshold``): components no pupil transmits carry no information;
- the pupil, constrained to a few Zernike terms times the known Gaussian CRL apodisation
  (Simons et al. 2017, doi:10.1107/S160057751602049X); or, as the naive baseline, a free
  complex pupil array ("blind");
- the pupil shifts, through a correction whose mean is held at zero: a common shift of all images
  moves the object spectrum, i.e. adds a uniform strain/tilt phase ramp, so it is not identifiable
  (the analysis fixes it with a reference region).

Convergence criterion: stop when one object+pupil cycle lowers the best loss by less than
``tolerance`` (relative), or when the budget of ``iterations`` model evaluations (one evaluation =
a forward and backward pass over all images, comparable to one FP/ePIE iteration) is spent.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
import xarray as xr

from scopeflow.fpxm.forward import (
    FPGeometry,
    detector_mtf,
    intensities,
    pupil_coverage,
    pupil_stack,
    spectrum_to_object,
    window_indices,
    window_origin,
)
from scopeflow.fpxm.options import ReconstructOptions
from scopeflow.nn.device import select_device

__all__ = [
    "fp_reconstruct",
    "reconstruct",
    "geometry_from_stack",
    "auto_band_threshold",
]

log = logging.getLogger(__name__)


def geometry_from_stack(ds: xr.Dataset) -> FPGeometry:
    """FP geometry from the calibrations of an ``fpxm.stack`` store."""
    need = ("wavelength_nm", "pixel_size_nm", "upsampling", "na_rms", "aperture_mrad")
    missing = [k for k in need if ds.attrs.get(k) is None]
    if missing:
        raise ValueError(f"fpxm stack lacks calibration attrs {missing}")
    n_img = ds.sizes["row"]
    if ds.sizes["col"] != n_img:
        raise ValueError(f"fpxm images must be square, got {ds.sizes['row']}x{ds.sizes['col']}")
    n_obj = n_img * int(ds.attrs["upsampling"])
    geom = FPGeometry(
        n_obj,
        n_img,
        float(ds.attrs["pixel_size_nm"]),
        float(ds.attrs["wavelength_nm"]),
        float(ds.attrs["na_rms"]),
        float(ds.attrs["aperture_mrad"]) * 1e-3,
    )
    return FPGeometry(**{**geom.__dict__, "edge_width": 1.0 / geom.aperture_px})


def _initial_spectrum(images, geom, shifts_px, pupils):
    """Spectrum of the low-resolution amplitude of the image nearest the optical axis."""
    j = int(torch.argmin((shifts_px**2).sum(-1)))
    amp = torch.sqrt(torch.clamp(images[j], min=0.0)).to(pupils.dtype)
    win = torch.fft.fft2(amp, norm="ortho") * (pupils[j, 0].abs() > 0)
    rows, cols, _ = window_indices(window_origin(shifts_px[j : j + 1]), geom.n_image, geom.n_object)
    spec = torch.zeros((geom.n_object,) * 2, dtype=pupils.dtype, device=pupils.device)
    spec[rows[0], cols[0]] = win
    return spec


def _lbfgs(params, closure, steps: int, history: int) -> None:
    """``steps`` L-BFGS iterations (strong-Wolfe line search) on ``params``."""
    opt = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=steps,
        max_eval=steps,  # the budget counts model evaluations: a hard limit
        history_size=history,
        line_search_fn="strong_wolfe",
        tolerance_grad=0.0,
        tolerance_change=0.0,
    )
    opt.step(closure)


def fp_reconstruct(
    images: torch.Tensor,
    geom: FPGeometry,
    shifts_px: torch.Tensor,
    mode_offset_px: torch.Tensor,
    mode_weight: torch.Tensor,
    *,
    blur_px: float = 0.0,
    pupil: str = "zernike",
    zernike_noll: tuple[int, ...] = (4, 5, 6, 7, 8),
    zernike_init: tuple[float, ...] = (),
    refine_shifts: bool = True,
    iterations: int = 300,
    warmup: int = 20,
    object_steps: int = 10,
    pupil_steps: int = 5,
    tolerance: float = 1e-5,
    regularization: float = 1e-3,
    band_threshold: float = 0.01,
    history: int = 10,
    progress_every: int = 25,
) -> dict:
    """FP recovery of the object spectrum with optional pupil and shift refinement.

    Parameters
    ----------
    images : torch.Tensor
        (J, n, n) measured intensities (any scale; photons for Poisson data).
    geom : FPGeometry
    shifts_px : torch.Tensor
        (J, 2) nominal pupil shifts [spectral px].
    mode_offset_px, mode_weight : torch.Tensor
        (M, 2) [spectral px] and (M,) illumination modes.
    blur_px : float
        Detector PSF sigma [image px].
    pupil : {"known", "zernike", "blind"}
        Pupil model (module docstring).
    zernike_noll, zernike_init : tuple
        Fitted Noll terms and their start (fixed for "known") values [rad].
    refine_shifts : bool
        Refine zero-mean shift corrections (one damped Newton step per cycle).
    iterations : int
        Budget of model evaluations (one evaluation = forward and backward pass over all images).
    warmup, object_steps, pupil_steps, tolerance, regularization, band_threshold, history,
    progress_every
        See :class:`~scopeflow.fpxm.options.ReconstructOptions`.

    Returns
    -------
    dict
        ``spectrum`` (N, N) complex, ``zernike`` (k,) [rad], ``shift_correction`` (J, 2) [px],
        ``pupil`` (n, n) complex (centred, zero shift), ``loss`` (one per evaluation),
        ``iterations`` (evaluations), ``converged``, ``seconds``.
    """
    t0 = time.perf_counter()
    device, rdtype = images.device, torch.float32
    meas_amp = torch.sqrt(torch.clamp(images / images.mean(), min=0.0)).to(rdtype)
    shifts0 = shifts_px.to(device, rdtype)
    modes = mode_offset_px.to(device, rdtype)
    weights = mode_weight.to(device, rdtype)
    mtf = detector_mtf(geom.n_image, blur_px, device=device) if blur_px > 0 else None
    init = list(zernike_init) + [0.0] * (len(zernike_noll) - len(zernike_init))
    coeffs = torch.tensor(init[: len(zernike_noll)], dtype=rdtype, device=device)
    shift_var = torch.zeros_like(shifts0)
    fit_pupil = pupil == "zernike" and len(zernike_noll) > 0

    def pupils_now(shift, co, fr):
        return pupil_stack(
            geom,
            shift,
            modes,
            zernike_noll=tuple(zernike_noll),
            zernike_coeffs=co,
            free_pupil=fr,
        )

    def corrected(v):
        return shifts0 + (v - v.mean(0, keepdim=True))  # zero-mean correction

    with torch.no_grad():
        spec = _initial_spectrum(meas_amp**2, geom, shifts0, pupils_now(shifts0, coeffs, None))
        free = None
        if pupil == "blind":
            free = pupils_now(torch.zeros(1, 2, device=device), coeffs, None)[0, 0].clone()
    losses: list[float] = []
    state = {"evals": 0}

    def loss_of(spec_, pup, shifts):
        model = intensities(spec_, pup, shifts, weights, mtf)
        loss = ((torch.sqrt(torch.clamp(model, min=0.0) + 1e-12) - meas_amp) ** 2).sum()
        losses.append(float(loss.detach()))
        state["evals"] += 1
        if state["evals"] % progress_every == 0:
            log.info(
                "fpxm reconstruct: evaluation %d/%d loss %.6g",
                state["evals"],
                iterations,
                losses[-1],
            )
        return loss

    def object_block(steps):
        nonlocal spec
        with torch.no_grad():
            shifts = corrected(shift_var)
            pup = pupils_now(shifts, coeffs, free)
            cover = pupil_coverage(pup, shifts, weights, geom.n_object)
            support = (cover >= band_threshold).to(rdtype)
            precond = torch.sqrt(cover + regularization * cover.max())
        # preconditioned variable x = S sqrt(coverage): the quasi-Newton problem is then close
        # to the alternating-projection metric; S is kept on the transmitted band (support)
        x = torch.view_as_real(spec * precond * support).clone().requires_grad_(True)

        def closure():
            x.grad = None
            loss = loss_of(torch.view_as_complex(x) / precond * support, pup, shifts)
            loss.backward()
            return loss

        _lbfgs([x], closure, steps, history)
        spec = (torch.view_as_complex(x.detach()) / precond * support).detach()

    def pupil_block(steps):
        nonlocal coeffs, free
        params = []
        if fit_pupil:
            coeffs = coeffs.detach().requires_grad_(True)
            params.append(coeffs)
        if free is not None:
            free_x = torch.view_as_real(free).clone().requires_grad_(True)
            params.append(free_x)
        if not params:
            return

        def closure():
            for p in params:
                p.grad = None
            fr = torch.view_as_complex(free_x) if free is not None else None
            shifts = corrected(shift_var)
            loss = loss_of(spec, pupils_now(shifts, coeffs, fr), shifts)
            loss.backward()
            return loss

        _lbfgs(params, closure, steps, history)
        coeffs = coeffs.detach()
        if free is not None:
            free = torch.view_as_complex(free_x.detach()).clone()

    def shift_gradient(v):
        v = v.detach().requires_grad_(True)
        shifts = shifts0 + v  # mean removed after the step
        loss = loss_of(spec, pupils_now(shifts, coeffs, free), shifts)
        (grad,) = torch.autograd.grad(loss, v)
        return grad

    def shift_block():
        # damped Newton per image: the loss is a sum over images and image j depends on its own
        # shift only, so the Hessian in the shifts is block-diagonal (2x2 per image), here by
        # finite differences of the autograd gradient (3 evaluations per step)
        nonlocal shift_var
        h = 0.05  # px
        v = corrected(shift_var) - shifts0
        g0 = shift_gradient(v)
        cols = [(shift_gradient(v + h * e) - g0) / h for e in torch.eye(2, device=device)]
        hess = torch.stack(cols, -1)
        hess = 0.5 * (hess + hess.transpose(-1, -2))
        diag = torch.diagonal(hess, dim1=-2, dim2=-1)
        off = hess.abs().sum(-1) - diag.abs()
        damp = torch.clamp(-(diag - off).amin(-1) + 1e-3 * diag.abs().amax(-1), min=0.0)
        step = -torch.linalg.solve(
            hess + damp[:, None, None] * torch.eye(2, device=device), g0[..., None]
        )[..., 0]
        norm = torch.linalg.norm(step, dim=-1, keepdim=True)
        step = step * torch.clamp(0.5 / (norm + 1e-12), max=1.0)  # trust region 0.5 px
        shift_var = (v + step).detach()

    refine = fit_pupil or refine_shifts or free is not None
    # without refinement one uninterrupted L-BFGS run keeps its curvature history
    object_block(min(warmup, iterations) if refine else iterations)
    converged = False
    while state["evals"] < iterations:
        before = min(losses)
        object_block(max(1, min(object_steps, iterations - state["evals"])))
        if (fit_pupil or free is not None) and state["evals"] < iterations:
            pupil_block(max(1, min(pupil_steps, iterations - state["evals"])))
        if refine_shifts and state["evals"] + 3 <= iterations:
            shift_block()
        if before > 0 and (before - min(losses)) / before < tolerance:
            converged = True
            break
    with torch.no_grad():
        pupil_out = pupils_now(torch.zeros(1, 2, device=device), coeffs, free)[0, 0]
        shift_corr = corrected(shift_var) - shifts0
    return {
        "spectrum": spec.detach(),
        "zernike": coeffs.detach(),
        "shift_correction": shift_corr,
        "pupil": torch.fft.fftshift(pupil_out),
        "loss": np.array(losses),
        "iterations": state["evals"],
        "converged": converged,
        "seconds": time.perf_counter() - t0,
    }


def auto_band_threshold(images: np.ndarray, attrs: dict) -> float:
    """Coverage threshold of the spectrum support from the photon noise (empirical rule).

    ``max(0.01, 20 σ_a)`` with ``σ_a = 1/(2 sqrt(mean counts))`` the relative amplitude noise of
    Poisson counts: at 1e4 photons/px components transmitted with summed pupil power below 0.1
    carry more noise than signal for the domain structures simulated here. A simulated
    noise-free stack (``photons_per_px`` null) keeps everything above 0.01.
    """
    if "photons_per_px" in attrs and attrs["photons_per_px"] is None:
        return 0.01
    counts = float(np.mean(images))
    if counts <= 0:
        raise ValueError("fpxm stack images have no counts (mean <= 0)")
    return max(0.01, 20.0 / (2.0 * np.sqrt(counts)))


def reconstruct(inputs: list, opts: ReconstructOptions) -> xr.Dataset:
    """The ``reconstruct`` stage: ``fpxm.stack`` -> ``fpxm.field``.

    The pupil and shift corrections are recovered on the first field state and reused for the
    others (same optics). Returns ``field_re/_im (efield, obj_row, obj_col)``, ``zernike_coeff
    (zernike)`` [rad], ``shift_correction (shot, axis)`` [mrad], ``pupil_re/_im (k_row, k_col)``,
    ``loss (efield, iteration)``; attrs ``seconds``, ``iterations``, ``converged``.
    """
    (ds,) = inputs
    if ds["image"].dims != ("efield", "shot", "row", "col"):
        raise ValueError(f"fpxm stack image dims {ds['image'].dims} != (efield, shot, row, col)")
    images = np.asarray(ds["image"].values, dtype=np.float32)
    if not np.all(np.isfinite(images)):
        raise ValueError("fpxm stack 'image' contains NaN/inf")
    device = select_device(opts.device)
    geom = geometry_from_stack(ds)
    mrad = geom.mrad_per_px
    shifts = torch.from_numpy(ds["pupil_shift"].values / mrad).float()
    mode_off = torch.from_numpy(ds["mode_offset"].values / mrad).float()
    mode_w = torch.from_numpy(ds["mode_weight"].values).float()
    blur = float(ds.attrs.get("detector_blur_px", 0.0))
    band = opts.band_threshold
    if band is None:
        band = auto_band_threshold(images, ds.attrs)
    common = dict(
        blur_px=blur,
        iterations=opts.iterations,
        warmup=opts.warmup,
        object_steps=opts.object_steps,
        pupil_steps=opts.pupil_steps,
        tolerance=opts.tolerance,
        regularization=opts.regularization,
        band_threshold=band,
        history=opts.history,
        progress_every=opts.progress_every,
    )
    results = []
    for s in range(images.shape[0]):
        img = torch.from_numpy(images[s]).to(device)
        if s == 0:
            res = fp_reconstruct(
                img,
                geom,
                shifts,
                mode_off,
                mode_w,
                pupil=opts.pupil,
                zernike_noll=tuple(opts.zernike_noll),
                zernike_init=tuple(opts.zernike_init_rad),
                refine_shifts=opts.refine_shifts,
                **common,
            )
        else:
            first = results[0]
            res = fp_reconstruct(
                img,
                geom,
                shifts + first["shift_correction"].cpu(),
                mode_off,
                mode_w,
                pupil="known",
                zernike_noll=tuple(opts.zernike_noll),
                zernike_init=tuple(first["zernike"].cpu().tolist()),
                refine_shifts=False,
                **common,
            )
        results.append(res)
    return _field_dataset(ds, opts, geom, results, band)


def _field_dataset(ds, opts, geom, results, band) -> xr.Dataset:
    fields = np.stack(
        [spectrum_to_object(r["spectrum"], geom.n_image).cpu().numpy() for r in results]
    )
    n_it = max(r["iterations"] for r in results)
    loss = np.full((len(results), n_it), np.nan)
    for i, r in enumerate(results):
        loss[i, : r["iterations"]] = r["loss"]
    first = results[0]
    obj = (np.arange(geom.n_object) - geom.n_object / 2) * geom.pixel_size_nm
    k_mrad = (np.arange(geom.n_image) - geom.n_image // 2) * geom.mrad_per_px
    obj3 = ("efield", "obj_row", "obj_col")
    pupil = first["pupil"].cpu().numpy()
    data = {
        "field_re": (obj3, fields.real.astype(np.float32), {"units": "1"}),
        "field_im": (obj3, fields.imag.astype(np.float32), {"units": "1"}),
        "zernike_coeff": (
            ("zernike",),
            first["zernike"].cpu().numpy().astype(float),
            {"units": "rad", "long_name": "Zernike coefficient (Noll, RMS)"},
        ),
        "shift_correction": (
            ("shot", "axis"),
            first["shift_correction"].cpu().numpy() * geom.mrad_per_px,
            {"units": "mrad"},
        ),
        "pupil_re": (("k_row", "k_col"), pupil.real.astype(np.float32), {"units": "1"}),
        "pupil_im": (("k_row", "k_col"), pupil.imag.astype(np.float32), {"units": "1"}),
        "loss": (("efield", "iteration"), loss, {"units": "1"}),
    }
    noll = list(opts.zernike_noll) if opts.pupil != "blind" else []
    if opts.pupil == "blind":
        data["zernike_coeff"] = (("zernike",), np.zeros(0), {"units": "rad"})
    coords = {
        "efield": ("efield", ds["efield"].values, {"units": "MV/m"}),
        "shot": ("shot", ds["shot"].values, {"units": "1"}),
        "axis": ("axis", ["row", "col"]),
        "zernike": ("zernike", np.array(noll, dtype=int), {"units": "1"}),
        "iteration": ("iteration", np.arange(n_it), {"units": "1"}),
        "obj_row": ("obj_row", obj, {"units": "nm"}),
        "obj_col": ("obj_col", obj, {"units": "nm"}),
        "k_row": ("k_row", k_mrad, {"units": "mrad"}),
        "k_col": ("k_col", k_mrad, {"units": "mrad"}),
    }
    keep = (
        "energy_ev",
        "wavelength_nm",
        "reflection",
        "lattice_a0_nm",
        "g_unit_rowcol",
        "g_magnitude_rad_per_nm",
        "pixel_size_nm",
        "image_pixel_size_nm",
        "upsampling",
        "na_rms",
        "aperture_mrad",
        "detector_blur_px",
        "material",
        "temperature_k",
        "reference_region",
    )
    attrs = {k: ds.attrs[k] for k in keep if k in ds.attrs}
    attrs.update(
        {
            "pupil_model": opts.pupil,
            "band_threshold": float(band),
            "seconds": float(sum(r["seconds"] for r in results)),
            "iterations": int(first["iterations"]),
            "converged": bool(first["converged"]),
            "convergence_criterion": (
                f"relative decrease of the lowest loss over one object+pupil cycle < "
                f"{opts.tolerance}, or {opts.iterations} model evaluations"
            ),
            "shift_correction_note": "zero-mean: a common shift equals a uniform strain/tilt ramp",
        }
    )
    return xr.Dataset(data, coords=coords, attrs=attrs)
