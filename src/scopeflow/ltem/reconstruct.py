"""The ``reconstruct`` stage: TIE baseline and AD phase retrieval of a through-focus series.

Input: an ``ltem.series`` store (``image (defocus, row, col)``, optional ``image_flip``).
Output (kind ``ltem.phase``), all on the input grid:

- ``phase_tie`` [rad] (with a flip series also ``phase_tie_m``, ``phase_tie_e``);
- ``phase_ad`` [rad] (total phase of the sample series), ``amplitude_ad`` [1] (by default fixed
  at the square root of the smoothed reference image, :func:`in_focus_log_amplitude`: a freely
  refined amplitude absorbs the even-in-defocus signal that fixes the relative image shifts and
  fits noise at small defocus; ``refine_amplitude`` refines it), and with a flip
  series ``phase_ad_m``, ``phase_ad_e``;
- ``phase_ad_sigma`` [rad], ``bx_ad_sigma_tnm``, ``by_ad_sigma_tnm`` [T nm]: per-pixel standard
  deviations from a parametric Poisson (or Gaussian) bootstrap (:mod:`scopeflow.ltem.uncertainty`);
- refined microscope parameters: ``defocus_nm_ad (defocus)``, ``defocus_offset_nm (defocus)``,
  ``shift_px (defocus, axis)``, ``rotation_deg (defocus)``, ``magnification (defocus)``,
  ``gain (defocus)`` (``*_flip`` for the flipped series), and scalars ``theta_c_rad_ad``,
  ``astig_nm_ad``, ``astig_angle_deg_ad``;
- the input's ``true_*`` variables and ``ground_truth`` attrs, passed through so that
  ``analyze`` needs only this store;
- ``attrs["ad"]``: seconds (wall), cpu_seconds (``time.process_time``), iterations,
  evaluations, convergence reason, optimizer, TV weight, chi2/N, likelihood, uncertainty method.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch
import xarray as xr

from scopeflow.ltem.ad import (
    Objective,
    debias_phase_scale,
    discrepancy_search,
    effective_dose,
    low_frequency_band,
    noise_variance,
    optimize,
)
from scopeflow.ltem.model import SCALES, ForwardModel, Series
from scopeflow.ltem.options import AdOptions, ReconstructOptions
from scopeflow.ltem.tie import separate_flip, tie_phase
from scopeflow.ltem.uncertainty import bootstrap
from scopeflow.nn.device import select_device
from scopeflow.optics.wavelength import electron_wavelength

__all__ = ["reconstruct", "run_ad", "check_series", "in_focus_log_amplitude"]

log = logging.getLogger(__name__)

#: Defocus at which ``tv_weight`` applies as is (1 mm):
#: lambda = tv_weight (rms df / this)^tv_defocus_power (dose / TV_REFERENCE_DOSE).
TV_REFERENCE_DEFOCUS_NM = 1e6
#: Dose [counts/px] at which ``tv_weight`` and ``tv_highpass_weight`` apply as is:
#: lambda_hp = tv_highpass_weight sqrt(dose / this) (:mod:`scopeflow.ltem.ad`).
TV_REFERENCE_DOSE = 100.0

_REFINE = {
    "log_amp": "refine_amplitude",
    "gain": "refine_gain",
    "background": "refine_background",
    "shift": "refine_shifts",
    "rotation": "refine_rotation",
    "logmag": "refine_magnification",
    "defocus": "refine_defocus",
    "log_theta_c": "refine_theta_c",
    "astig": "refine_astigmatism",
}


def check_series(ds: xr.Dataset, where: str = "ltem.series") -> None:
    """Raise a clear error if a series store lacks what reconstruction needs."""
    if "image" not in ds:
        raise ValueError(f"{where}: no variable 'image' (expected image (defocus, row, col))")
    for name in ("image", "image_flip"):
        if name in ds and tuple(ds[name].dims) != ("defocus", "row", "col"):
            raise ValueError(
                f"{where}: {name} has dims {tuple(ds[name].dims)}, expected (defocus, row, col)"
            )
    for key in ("energy_ev", "pixel_size_nm"):
        if key not in ds.attrs:
            raise ValueError(f"{where}: attribute {key!r} missing (calibration)")
    if ds.sizes["defocus"] < 2 or np.unique(ds["defocus"].values).size < 2:
        raise ValueError(f"{where}: needs >= 2 distinct defocus values, got {ds['defocus'].values}")


def _finite(arr: np.ndarray, name: str) -> np.ndarray:
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(
            f"ltem.series: {name} has {int(bad.sum())} NaN/inf values "
            f"(first at {np.argwhere(bad)[0].tolist()})"
        )
    return arr


def _microscope(ds: xr.Dataset, opts: ReconstructOptions) -> dict:
    def pick(opt_value, key, default=0.0):
        if opt_value is not None:
            return float(opt_value)
        if key not in ds.attrs:
            log.info("%s not in the store: using %s", key, default)
        return float(ds.attrs.get(key, default))

    return {
        "wavelength": electron_wavelength(float(ds.attrs["energy_ev"])),
        "pixel_size": float(ds.attrs["pixel_size_nm"]),
        "cs_nm": pick(opts.cs_mm, "cs_mm") * 1e6,
        "theta_c": pick(opts.theta_c_rad, "theta_c_rad"),
        "defocus_spread_nm": pick(opts.defocus_spread_nm, "defocus_spread_nm"),
    }


def run_ad(
    series: list[Series],
    micro: dict,
    ad: AdOptions,
    start: list[np.ndarray],
    device: torch.device,
    likelihood: str,
    progress: bool = True,
):
    """Build the forward model, start from ``start`` phases and optimise.

    Parameters
    ----------
    series : list of Series
        The sample series (and the flipped one).
    micro : dict
        ``wavelength``, ``pixel_size``, ``cs_nm``, ``theta_c``, ``defocus_spread_nm``.
    ad : AdOptions
    start : list of (rows, cols) ndarray
        Starting phase of each series (TIE, or zeros).
    device : torch.device
    likelihood : {"poisson", "gaussian"}

    Returns
    -------
    model : ForwardModel
    objective : Objective
    info : dict
        Optimiser report (:func:`scopeflow.ltem.ad.optimize`).
    """
    refine = {"phase"} | {k for k, flag in _REFINE.items() if getattr(ad, flag)}
    model = ForwardModel(
        series,
        micro["pixel_size"],
        micro["wavelength"],
        cs_nm=micro["cs_nm"],
        theta_c=micro["theta_c"],
        defocus_spread_nm=micro["defocus_spread_nm"],
        refine=refine,
        defocus_scale=ad.defocus_scale,
        device=device,
    )
    if ad.start == "tie":
        if len(start) == 2:
            pm, pe = separate_flip(start[0], start[1])
            model.set_phase(pe)
            model.set_phase(pm, "phase_m")
        else:
            model.set_phase(start[0])
    if ad.amplitude_start == "in_focus":
        model.set_log_amplitude(in_focus_log_amplitude(series[0], ad.amplitude_smoothing_px))
    # The data's information on the phase grows as df^2 dose below the first CTF zero (TIE
    # regime, where the phase's energy lies): lambda follows it (power 2), so it shrinks the
    # low frequencies alike at every defocus and dose; beyond the zero, where TV fights noise
    # fitting, the information does not grow with df: the high-pass term (defocus-free,
    # ~sqrt(dose)) does that (scopeflow.ltem.ad). Measured (Bloch skyrmion, 3 images): a
    # constant lambda = 3.75 shrinks the 200 um phase (0.045 after the scale debias); lambda =
    # 0.1 there alone fits noise at high frequencies (0.038).
    df2 = float(np.mean(np.concatenate([np.asarray(s.defocus) ** 2 for s in series])))
    rms_rel = math.sqrt(df2) / TV_REFERENCE_DEFOCUS_NM
    free_band = 0.0
    if ad.tv_highpass_weight > 0:
        free_band = low_frequency_band(
            model.shape,
            sum(int(s.images.numel()) for s in series),
            np.concatenate([np.asarray(s.defocus) for s in series]),
            micro["wavelength"],
            micro["pixel_size"],
        )
    objective = Objective(
        model,
        likelihood,
        ad.tv_weight * rms_rel**ad.tv_defocus_power,
        ad.tv_epsilon_rad,
        ad.amplitude_tv_factor,
        ad.regularization == "tv",
        ad.tv_highpass_weight,
        free_band,
    )
    dose_rel = effective_dose(objective) / TV_REFERENCE_DOSE
    objective.tv_weight *= dose_rel
    objective.highpass_weight *= math.sqrt(dose_rel)
    if ad.tv_weight_rule == "discrepancy" and ad.regularization == "tv":
        info = discrepancy_search(objective, max_iter=ad.max_iter, tol=ad.tol, progress=progress)
    else:
        info = optimize(
            objective,
            max_iter=ad.max_iter,
            tol=ad.tol,
            method=ad.optimizer,
            adam_lr=ad.adam_lr,
            progress=progress,
        )
        info["tv_weight"] = objective.tv_weight
    info["phase_debias_factor"] = 1.0
    if ad.debias_scale and ad.regularization == "tv" and objective.tv_weight > 0:
        info["phase_debias_factor"] = debias_phase_scale(objective)
    info["tv_highpass_band_cycles_per_px"] = free_band
    info["chi2_per_pixel"] = objective.chi2_per_pixel(model.params)
    return model, objective, info


#: Relative noise of the in-focus amplitude that the automatic smoothing aims at.
AMPLITUDE_NOISE_TARGET = 0.005


def in_focus_log_amplitude(
    series: Series, sigma_px: float | None, floor: float = 0.1
) -> np.ndarray:
    """Log-amplitude from the reference (smallest ``|defocus|``) image: ``log(I_s / <I_s>) / 2``.

    Near focus the image is ``|psi|^2`` blurred by the (small) residual phase contrast, so its
    Gaussian-smoothed version (``sigma_px``, which trades noise for resolution) is a
    data-driven amplitude; floored at ``floor`` times the mean. With ``sigma_px=None`` the
    width follows from the image's white-noise level ``r`` (relative to its mean, Immerkaer's
    estimate): a Gaussian of width ``s`` reduces white noise by ``2 sqrt(pi) s`` and the square
    root halves it, so ``s = r / (4 sqrt(pi) t)`` gives the relative amplitude noise
    ``t`` = :data:`AMPLITUDE_NOISE_TARGET` (2.8 px at 100 e/px, 8.9 px at 10 e/px), clipped to
    [1, 16] px.

    Parameters
    ----------
    series : Series
    sigma_px : float [px] or None
    floor : float

    Returns
    -------
    (rows, cols) float32 ndarray, mean-free
    """
    from scipy.ndimage import gaussian_filter

    ref = series.images[series.reference]
    img = ref.detach().cpu().numpy().astype(np.float64)
    if sigma_px is None:
        rel = float(noise_variance(ref[None])[0]) ** 0.5 / max(img.mean(), 1e-30)
        sigma_px = float(np.clip(rel / (4 * np.sqrt(np.pi) * AMPLITUDE_NOISE_TARGET), 1, 16))
        log.info("in-focus amplitude: relative noise %.3g -> smoothing %.2f px", rel, sigma_px)
    if sigma_px > 0:
        img = gaussian_filter(img, sigma_px, mode="wrap")
    img = np.maximum(img / img.mean(), floor)
    la = 0.5 * np.log(img)
    return (la - la.mean()).astype(np.float32)


def _likelihood(ds: xr.Dataset, ad: AdOptions) -> str:
    if ad.likelihood != "auto":
        return ad.likelihood
    return "poisson" if float(ds.attrs.get("dose") or 0) > 0 else "gaussian"


def _ad_variables(model: ForwardModel, series_names: list[str]) -> dict:
    p = model.params
    rc = ("row", "col")
    out = {}
    with torch.no_grad():
        if model.flip:
            out["phase_ad_e"] = (rc, model.phase_map(p).cpu().numpy(), {"units": "rad"})
            out["phase_ad_m"] = (rc, model.phase_map(p, "phase_m").cpu().numpy(), {"units": "rad"})
        out["phase_ad"] = (rc, model.phase(p, 0).cpu().numpy(), {"units": "rad"})
        out["amplitude_ad"] = (rc, torch.exp(model.log_amplitude(p)).cpu().numpy(), {"units": "1"})
        for i, sfx in enumerate(series_names):
            shift, rot, mag = model.alignment(p, i)
            df = model.defocus(p, i)
            gain = torch.exp(p["gain" + sfx] * SCALES["gain"])
            out["defocus_nm_ad" + sfx] = ("defocus", df.cpu().numpy(), {"units": "nm"})
            out["defocus_offset_nm" + sfx] = (
                "defocus",
                (df - model.nominal[i]).cpu().numpy(),
                {"units": "nm"},
            )
            out["shift_px" + sfx] = (("defocus", "axis"), shift.cpu().numpy(), {"units": "px"})
            out["rotation_deg" + sfx] = ("defocus", rot.cpu().numpy(), {"units": "deg"})
            out["magnification" + sfx] = ("defocus", mag.cpu().numpy(), {"units": "1"})
            out["gain" + sfx] = ("defocus", gain.cpu().numpy(), {"units": "1"})
        a1, az = model.astigmatism(p)
        out["theta_c_rad_ad"] = ((), float(model.theta_c(p)), {"units": "rad"})
        out["astig_nm_ad"] = ((), float(a1), {"units": "nm"})
        out["astig_angle_deg_ad"] = ((), float(np.rad2deg(float(az))), {"units": "deg"})
    return out


def reconstruct(inputs: list[xr.Dataset], opts: ReconstructOptions) -> xr.Dataset:
    """TIE and AD reconstructions of an ``ltem.series`` store (module docstring)."""
    ds = inputs[0]
    check_series(ds)
    micro = _microscope(ds, opts)
    defocus = np.asarray(ds["defocus"].values, dtype=np.float64)
    names = ["image"] + (["image_flip"] if "image_flip" in ds else [])
    images = [_finite(np.asarray(ds[n].values, dtype=np.float32), n) for n in names]
    t = opts.tie
    tie = [
        tie_phase(
            im,
            defocus,
            micro["pixel_size"],
            micro["wavelength"],
            floor=t.floor,
            mirror_pad=t.mirror_pad,
            qc=t.tikhonov_qc_per_nm,
            i0_smoothing_px=t.i0_smoothing_px,
        )
        for im in images
    ]
    rc = ("row", "col")
    data_vars = {"phase_tie": (rc, tie[0], {"units": "rad"})}
    if len(tie) == 2:
        tm, te = separate_flip(*tie)
        data_vars["phase_tie_m"] = (rc, tm, {"units": "rad"})
        data_vars["phase_tie_e"] = (rc, te, {"units": "rad"})
    attrs = {k: v for k, v in ds.attrs.items() if k not in ("scopeflow", "provenance")}
    if opts.ad.enabled:
        device = select_device(opts.device)
        series = [
            Series(torch.as_tensor(im), defocus, sign=1 if i == 0 else -1)
            for i, im in enumerate(images)
        ]
        likelihood = _likelihood(ds, opts.ad)
        if likelihood == "poisson" and any(float(im.min()) < 0 for im in images):
            raise ValueError(
                "ltem.series: negative counts cannot be Poisson data; "
                "set reconstruct.ad.likelihood='gaussian'"
            )
        t0, c0 = time.perf_counter(), time.process_time()
        model, objective, info = run_ad(series, micro, opts.ad, tie, device, likelihood)
        info["seconds"] = time.perf_counter() - t0
        info["cpu_seconds"] = time.process_time() - c0
        data_vars.update(_ad_variables(model, ["", "_flip"][: len(series)]))
        unc = "none"
        if opts.ad.uncertainty == "bootstrap":
            sig = bootstrap(
                model,
                objective,
                n=opts.ad.n_bootstrap,
                max_iter=opts.ad.bootstrap_max_iter,
                tol=opts.ad.tol,
            )
            for name, arr in sig.items():
                data_vars[name] = (rc, arr, {"units": "T nm" if "tnm" in name else "rad"})
            unc = f"parametric {likelihood} bootstrap, {opts.ad.n_bootstrap} warm-started refits"
        attrs["ad"] = {
            "seconds": float(info["seconds"]),
            "cpu_seconds": float(info["cpu_seconds"]),
            "iterations": int(info["iterations"]),
            "evaluations": int(info["evaluations"]),
            "convergence": str(info["reason"]),
            "optimizer": str(info["optimizer"]),
            "objective": float(info["objective"]),
            "tv_weight": float(info["tv_weight"]),
            "chi2_per_pixel": float(info["chi2_per_pixel"]),
            "phase_debias_factor": float(info["phase_debias_factor"]),
            "tv_highpass_weight": float(objective.highpass_weight),
            "tv_highpass_band_cycles_per_px": float(info["tv_highpass_band_cycles_per_px"]),
            "likelihood": likelihood,
            "uncertainty": unc,
            "device": str(device),
            "refined": sorted(model.refine),
            "defocus_scale": opts.ad.defocus_scale,
        }
    for name in ds.data_vars:
        if str(name).startswith("true_"):
            data_vars[str(name)] = ds[name].variable.load()
    coords = {c: ds[c].variable.load() for c in ("defocus", "row", "col")}
    coords["axis"] = ("axis", np.array(["row", "col"]), {"units": "1"})
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
