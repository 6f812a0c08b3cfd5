"""Phase -> strain and tilt -> polarization, and metrics vs truth (the ``analyze`` stage).

- Phase gradients come from the complex field, ``∇φ = Im(ψ* ∇ψ)/|ψ|²`` with Gaussian-derivative
  filters (no unwrapping needed); the unwrapped phase map (scikit-image, masked to the bright,
  in-Bragg region) is for display.
- Referencing: a uniform strain or tilt shifts the local spectrum exactly as an offset of the
  pupil does, so FP-DFXM measures strain and tilt relative to a reference region (where the
  rocking angle was set). Its mean gradient is removed and its absolute strain is added back:
  ``reference_strain`` or, by default, the stress-free LGD value of the imaged variant (c domain,
  P ∥ G) at the stack's temperature and field.
- Strain along G: ``ε_GG = ∂_G φ / |G|``; lattice tilt across G: ``∂_⊥ φ / |G|`` (rad).
- Polarization: local equilibrium of the LGD energy given the measured strain
  (:func:`scopeflow.fpxm.lgd.local_equilibrium`, Li, Cross, Chen 2005, doi:10.1063/1.2042528).
  Strain is even in P: P and -P are indistinguishable. Without a ±E pair the sign is set to +G by
  convention (``polarization_sign`` = 0, "unknown"); with a pair the sign is where the strain
  grows under +E (piezoresponse ∂ε/∂E = 2 Q P ∂P/∂E has the sign of P·E).
- With ground truth, ``AnalyzeOptions.ptylab`` and PtyLab installed, PtyLab reconstructs the
  same stack with the true pupil for the same iteration budget
  (:mod:`scopeflow.fpxm.ptylab_baseline`), scored like ours: ``ptylab.*`` metrics.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from scipy import ndimage
from skimage.restoration import unwrap_phase

from scopeflow.fpxm import lgd
from scopeflow.fpxm.options import AnalyzeOptions
from scopeflow.fpxm.ptylab_baseline import ptylab_available, ptylab_reconstruct

__all__ = ["analyze", "phase_gradient", "field_metrics", "zernike_rmse"]


def phase_gradient(field: np.ndarray, sigma_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Phase gradient of a complex field by Gaussian-derivative filters.

    Parameters
    ----------
    field : (row, col) complex
    sigma_px : float
        Gaussian sigma [px] (also the smoothing of the result).

    Returns
    -------
    d_row, d_col : (row, col) float [rad/px]
    """

    def filt(order):
        re = ndimage.gaussian_filter(field.real, sigma_px, order=order, mode="wrap")
        im = ndimage.gaussian_filter(field.imag, sigma_px, order=order, mode="wrap")
        return re + 1j * im

    smooth = filt((0, 0))
    power = np.abs(smooth) ** 2 + 1e-12
    d_row = np.imag(np.conj(smooth) * filt((1, 0))) / power
    d_col = np.imag(np.conj(smooth) * filt((0, 1))) / power
    return d_row, d_col


def field_metrics(rec: np.ndarray, truth: np.ndarray, bright: np.ndarray) -> dict:
    """NRMSE and phase RMSE [rad, on ``bright``] up to the non-identifiable modes.

    A global complex factor and a linear phase ramp (uniform strain/tilt, degenerate with a
    pupil offset and with the tilt content of the aberrations) are fitted on ``bright`` and
    removed before scoring.
    """
    dphi = np.angle(rec * np.conj(truth))
    dphi = np.where(bright, unwrap_phase(np.ma.masked_array(dphi, ~bright)).filled(0.0), 0.0)
    rr, cc = np.mgrid[0 : rec.shape[0], 0 : rec.shape[1]].astype(float)
    a = np.stack([np.ones(bright.sum()), rr[bright], cc[bright]], -1)
    coef, *_ = np.linalg.lstsq(a, dphi[bright], rcond=None)
    rec = rec * np.exp(-1j * (coef[1] * rr + coef[2] * cc))
    alpha = np.vdot(rec, truth) / np.vdot(rec, rec)
    nrmse = np.linalg.norm(alpha * rec - truth) / np.linalg.norm(truth)
    dphi = np.angle(alpha * rec * np.conj(truth))[bright]
    return {
        "nrmse": float(nrmse),
        "phase_rmse_rad": float(np.sqrt(np.mean(dphi**2))),
        "ramp_rad_per_px": [float(coef[1]), float(coef[2])],
    }


def zernike_rmse(noll_rec, coeff_rec, noll_true, coeff_true) -> tuple[float, float]:
    """RMS and max coefficient error over the union of terms (absent terms count as 0) [rad]."""
    rec = dict(zip((int(j) for j in noll_rec), (float(c) for c in coeff_rec), strict=True))
    tru = dict(zip((int(j) for j in noll_true), (float(c) for c in coeff_true), strict=True))
    keys = sorted(set(rec) | set(tru))
    err = np.array([rec.get(k, 0.0) - tru.get(k, 0.0) for k in keys])
    if err.size == 0:
        return 0.0, 0.0
    return float(np.sqrt(np.mean(err**2))), float(np.abs(err).max())


def _box_mean(a: np.ndarray, box) -> float:
    r0, r1, c0, c1 = box
    return float(np.mean(a[r0:r1, c0:c1]))


def _reference_strain(c, tk, g3, efield_v_per_m):
    """Stress-free strain along G of the variant with P ∥ G at field E ∥ G (LGD)."""
    ps = lgd.spontaneous_polarization(tk, c)
    p0 = torch.from_numpy(np.asarray(g3 * ps, dtype=np.float64)[None])
    p = lgd.local_equilibrium(p0, tk, c, efield=tuple(g3 * efield_v_per_m))
    e0 = lgd.eigenstrain(p, c)[0].numpy()
    return float(g3 @ e0 @ g3), ps


def analyze(inputs: list, opts: AnalyzeOptions) -> xr.Dataset:
    """The ``analyze`` stage: (``fpxm.stack``, ``fpxm.field``) -> ``fpxm.analysis``.

    Returns
    -------
    xarray.Dataset
        ``amplitude``, ``phase`` (unwrapped, referenced; NaN where dark) [rad], ``strain``
        (along G, absolute) [1], ``tilt`` (across G) [rad], ``polarization (efield, component,
        obj_row, obj_col)`` [C/m²], ``polarization_magnitude``, ``polarization_sign (obj_row,
        obj_col)`` (+1/-1, 0 = unknown), ``bright``/``interior`` masks; ``attrs["metrics"]``.
    """
    stack, fld = (inputs[0], inputs[1]) if len(inputs) == 2 else (None, inputs[0])
    attrs = {**(stack.attrs if stack is not None else {}), **fld.attrs}
    for key in ("g_unit_rowcol", "g_magnitude_rad_per_nm", "pixel_size_nm"):
        if key not in attrs:
            raise ValueError(f"fpxm analyze: calibration attr {key!r} missing from the stores")
    field = fld["field_re"].values + 1j * fld["field_im"].values  # (efield, row, col)
    if not np.all(np.isfinite(field)):
        raise ValueError("fpxm analyze: the reconstructed field contains NaN/inf")
    efields = fld["efield"].values * 1e6  # V/m
    pix = float(attrs["pixel_size_nm"])
    g_img = np.asarray(attrs["g_unit_rowcol"], float)
    g_mag = float(attrs["g_magnitude_rad_per_nm"])
    g3 = np.array([g_img[1], 0.0, g_img[0]])  # crystal (x, y, z) from image (row=z, col=x)
    tk = (
        (opts.temperature_c + 273.15)
        if opts.temperature_c is not None
        else float(attrs.get("temperature_k", 298.15))
    )
    c = lgd.load_lgd(attrs.get("material", "BaTiO3"))
    box = tuple(opts.reference_region) or tuple(attrs.get("reference_region", ()))
    amp = np.abs(field)
    level = np.percentile(amp[0], 90)
    bright = amp[0] > opts.amplitude_threshold * level
    if len(box) != 4:
        rows, cols = np.nonzero(bright)
        box = (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
        ref_note = "no reference region given: the whole bright region is the reference"
    else:
        ref_note = f"reference region rows {box[0]}:{box[1]}, cols {box[2]}:{box[3]} (object px)"
    strain, tilt, phase = [], [], []
    ref_values = []
    for s, e in enumerate(efields):
        d_row, d_col = phase_gradient(field[s], opts.strain_smoothing_px)
        d_row -= _box_mean(d_row, box)
        d_col -= _box_mean(d_col, box)
        along = (g_img[0] * d_row + g_img[1] * d_col) / (pix * g_mag)
        across = (-g_img[1] * d_row + g_img[0] * d_col) / (pix * g_mag)
        if opts.reference_strain is not None:
            ref = float(opts.reference_strain)
        else:
            ref, _ = _reference_strain(c, tk, g3, e)
        ref_values.append(ref)
        strain.append(np.where(bright, along + ref, np.nan))
        tilt.append(np.where(bright, across, np.nan))
        phase.append(_referenced_phase(field[s], bright, box))
    strain, tilt = np.stack(strain), np.stack(tilt)
    pol, sign = _polarization(strain, bright, efields, g3, tk, c)
    ds = _analysis_dataset(fld, amp, np.stack(phase), strain, tilt, pol, sign, bright)
    ds.attrs.update(
        {
            "reference_region": [int(v) for v in box],
            "reference_strain": ref_values,
            "reference_note": (
                ref_note
                + "; uniform strain/tilt are degenerate with a pupil offset, so strain and "
                "tilt are relative to this region, whose absolute strain is reference_strain "
                "(option, or the stress-free LGD value of the variant with P parallel to G)"
            ),
            "sign_ambiguity": (
                "strain is even in P: the sign comes from the +-E pair (piezoresponse)"
                if len(efields) == 2
                else "strain is even in P: sign unknown, P drawn along +G by convention"
            ),
            "temperature_k": tk,
        }
    )
    ds.attrs["metrics"] = _metrics(stack, fld, ds, field, box, g_mag)
    if opts.ptylab and "recon.nrmse" in ds.attrs["metrics"] and ptylab_available():
        ds.attrs["metrics"].update(_ptylab_metrics(stack, fld))
    return ds


def _ptylab_metrics(stack, fld) -> dict:
    """PtyLab with the true pupil on the same stack and iteration budget, scored as ours."""
    gt = stack.attrs.get("ground_truth", {})
    if "zernike_noll" not in gt:
        return {}
    res = ptylab_reconstruct(stack, max(1, int(fld.attrs.get("iterations", 100))))
    truth = stack["true_field_re"].values[0] + 1j * stack["true_field_im"].values[0]
    t_amp = np.abs(truth)
    fm = field_metrics(res["field"], truth, t_amp > 0.5 * np.percentile(t_amp, 90))
    return {
        "ptylab.nrmse": fm["nrmse"],
        "ptylab.phase_rmse_rad": fm["phase_rmse_rad"],
        "ptylab.seconds": res["seconds"],
        "ptylab.iterations": res["iterations"],
    }


def _referenced_phase(field, bright, box):
    """Unwrapped phase (NaN where dark) minus its plane fit over the reference box."""
    wrapped = np.ma.masked_array(np.angle(field), mask=~bright)
    unwrapped = np.ma.filled(unwrap_phase(wrapped).astype(float), np.nan)
    r0, r1, c0, c1 = box
    rr, cc = np.mgrid[0 : field.shape[0], 0 : field.shape[1]].astype(float)
    sel = np.isfinite(unwrapped[r0:r1, c0:c1]).ravel()
    a = np.stack([np.ones(sel.size), rr[r0:r1, c0:c1].ravel(), cc[r0:r1, c0:c1].ravel()], -1)
    coef, *_ = np.linalg.lstsq(a[sel], unwrapped[r0:r1, c0:c1].ravel()[sel], rcond=None)
    return unwrapped - (coef[0] + coef[1] * rr + coef[2] * cc)


def _noise_sigma(field: np.ndarray, mask: np.ndarray) -> float:
    """Robust noise level of a map: MAD of its residual from a 3x3 mean, for white noise."""
    from scipy import ndimage

    filled = np.where(mask, field, 0.0)
    resid = filled - ndimage.uniform_filter(filled, 3, mode="nearest")
    inner = ndimage.binary_erosion(mask, np.ones((3, 3), bool))  # residuals from bright pixels only
    r = resid[inner & np.isfinite(resid)]
    if r.size == 0:
        return float("inf")
    mad = np.median(np.abs(r - np.median(r)))
    # the residual of white noise of sigma s has sigma s * sqrt(1 - 1/9) = 0.943 s
    return float(1.4826 * mad / np.sqrt(8 / 9))


def _polarization(strain, bright, efields, g3, tk, c):
    """P by local LGD equilibrium per bright pixel; sign from a ±E pair when there is one."""
    n_state = strain.shape[0]
    ps = lgd.spontaneous_polarization(tk, c)
    idx = np.nonzero(bright.ravel())[0]
    sign = np.zeros(bright.shape, np.int8)
    if n_state == 2 and efields[0] != efields[1]:
        dstrain = (strain[0] - strain[1]) * np.sign(efields[0] - efields[1])
        # the sign is known only where the piezoresponse stands out of the strain noise (3 sigma);
        # where it vanishes (e.g. a 180° laminate whose walls contain G: compatibility pins
        # eps_GG equal in both domains) the pair says nothing and the sign stays 0 = unknown
        known = bright & (np.abs(dstrain) > 3 * _noise_sigma(dstrain, bright))
        sign = np.where(known, np.where(dstrain >= 0, 1, -1), 0).astype(np.int8)
    pol = np.full((n_state, 3) + bright.shape, np.nan)
    for s in range(n_state):
        init = torch.from_numpy(np.tile(g3 * ps, (idx.size, 1)))
        signed = sign.ravel()[idx] if n_state == 2 else np.ones(idx.size)
        signed = np.where(signed == 0, 1, signed)  # unknown: along +G by convention
        init = init * torch.from_numpy(signed.astype(float))[:, None]
        p = lgd.local_equilibrium(
            init,
            tk,
            c,
            strain_g=torch.from_numpy(strain[s].ravel()[idx]),
            g_unit=tuple(g3),
            efield=tuple(g3 * efields[s]),
        ).numpy()
        for k in range(3):
            flat = pol[s, k].reshape(-1)
            flat[idx] = p[:, k]
    return pol, sign


def _analysis_dataset(fld, amp, phase, strain, tilt, pol, sign, bright) -> xr.Dataset:
    obj3 = ("efield", "obj_row", "obj_col")
    coords = {k: fld[k] for k in ("efield", "obj_row", "obj_col")}
    coords["component"] = ("component", ["x", "y", "z"])
    data = {
        "amplitude": (obj3, amp.astype(np.float32), {"units": "1"}),
        "phase": (obj3, phase.astype(np.float32), {"units": "rad"}),
        "strain": (obj3, strain, {"units": "1", "long_name": "strain along G (absolute)"}),
        "tilt": (obj3, tilt, {"units": "rad", "long_name": "lattice tilt across G"}),
        "polarization": (("efield", "component", "obj_row", "obj_col"), pol, {"units": "C/m^2"}),
        "polarization_magnitude": (obj3, np.sqrt(np.sum(pol**2, 1)), {"units": "C/m^2"}),
        "polarization_sign": (
            ("obj_row", "obj_col"),
            sign,
            {"units": "1", "long_name": "sign of P.G: +1/-1, 0 = unknown"},
        ),
        "bright": (("obj_row", "obj_col"), bright, {"units": "1"}),
    }
    return xr.Dataset(data, coords=coords)


def _metrics(stack, fld, ds, field, box, g_mag) -> dict:
    out = {
        "recon.seconds": float(fld.attrs.get("seconds", np.nan)),
        "recon.iterations": int(fld.attrs.get("iterations", 0)),
    }
    if stack is None or "true_field_re" not in stack:
        return out
    truth = stack["true_field_re"].values + 1j * stack["true_field_im"].values
    t_amp = np.abs(truth[0])
    t_bright = t_amp > 0.5 * np.percentile(t_amp, 90)
    fm = field_metrics(field[0], truth[0], t_bright)
    out["recon.nrmse"] = fm["nrmse"]
    out["recon.phase_rmse_rad"] = fm["phase_rmse_rad"]
    out["recon.ramp_row_rad_per_px"], out["recon.ramp_col_rad_per_px"] = fm["ramp_rad_per_px"]
    gt = stack.attrs.get("ground_truth", {})
    if "zernike_noll" in gt and fld.attrs.get("pupil_model") != "blind":
        rms, worst = zernike_rmse(
            fld["zernike"].values,
            fld["zernike_coeff"].values,
            gt["zernike_noll"],
            gt["zernike_rad"],
        )
        out["pupil.zernike_rmse_rad"] = rms
        out["pupil.zernike_max_error_rad"] = worst
    if "true_shift" in stack and "shift_correction" in fld:
        true_corr = stack["true_shift"].values - stack["pupil_shift"].values
        err = fld["shift_correction"].values - (true_corr - true_corr.mean(0))
        out["shift.rmse_mrad"] = float(np.sqrt(np.mean(err**2)))
    interior = stack["true_interior"].values & ds["bright"].values
    if interior.any():
        t_strain = stack["true_strain"].values
        m_strain = ds["strain"].values
        rel_t = t_strain[0] - _box_mean(t_strain[0], box)
        rel_m = m_strain[0] - _box_mean(m_strain[0], box)
        out["strain.rmse"] = float(np.sqrt(np.mean((rel_m - rel_t)[interior] ** 2)))
        out["strain.rmse_absolute"] = float(
            np.sqrt(np.mean((m_strain[0] - t_strain[0])[interior] ** 2))
        )
        t_pol = np.linalg.norm(stack["true_polarization"].values, axis=1)
        m_pol = ds["polarization_magnitude"].values
        nonzero = interior & np.all(t_pol > 0, axis=0)  # a wall centred on a pixel has P = 0
        rel = (m_pol - t_pol)[:, nonzero] / t_pol[:, nonzero]
        out["polarization.rel_error"] = float(np.sqrt(np.mean(rel**2)))
        out["polarization.max_rel_error"] = float(np.abs(rel).max())
        out["interior.pixels"] = int(interior.sum())
        if ds.sizes["efield"] == 2:
            t_sign = np.sign(stack["true_polarization"].values[0, 2])
            sign = ds["polarization_sign"].values
            known = interior & (sign != 0)
            out["polarization.sign_known_fraction"] = float(known.sum() / interior.sum())
            if known.any():
                out["polarization.sign_accuracy"] = float((sign[known] == t_sign[known]).mean())
    return out
