"""PtyLab's Fourier-ptychography engines on an ``fpxm.stack``: the external baseline.

PtyLab (Loetgering et al., Opt. Express 31, 13763 (2023), doi:10.1364/OE.485370; PyPI
``ptylab``, imported as ``PtyLab``) is an optional dependency, imported only when
:func:`ptylab_reconstruct` runs.

Geometry (derived from PtyLab's FPM model, checked by ``tests/fpxm/test_ptylab.py``): PtyLab
forms image j as ``|fft2c(O[p_j : p_j + n] · P)|²`` with ``fft2c`` the centred unitary FFT, ``O``
the (No, No) centred spectrum and ``p_j = No/2 - n/2 - round(s_j / (λ dfp))`` the patch corner,
``s_j`` the direction sines of an "LED" at ``encoder_j`` and ``dfp = 1/(n dxp)`` its spectral
pixel. The model of :mod:`scopeflow.fpxm.forward`, ``|ifft2(P(g) S(k_j + g))|²``, is the same
when

- the LED of image j has direction sines ``λ dq f_j`` (f_j the pupil shift [spectral px], dq
  the spectral pixel, dxp the image pixel, No = N): PtyLab places the patch at minus the LED
  frequency, which is where the spectrum window of a pupil shift +f_j starts;
- PtyLab's probe is our pupil point-reflected on the centred grid, ``P_PtyLab(g) = P(-g)``
  (its own default circular pupil is off-centre by half a pixel, so none of it is used);
- the field is ``ψ = fft2c(O)`` on the (N, N) object grid (an alternating sign in O and one
  per image drop out of every intensity).

PtyLab rounds the patch positions to whole spectral pixels and has neither a detector blur
model nor per-image sub-pixel pupil offsets: on stacks whose shifts are not whole spectral pixels
its model is approximate. Partial coherence is passed as probe modes (our coherence modes,
weighted by sqrt(w_m)).
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import xarray as xr

from scopeflow.fpxm.forward import pupil_stack
from scopeflow.fpxm.reconstruct import geometry_from_stack

__all__ = ["ptylab_available", "ptylab_reconstruct", "known_pupil_modes"]

_ENGINES = ("mPIE", "qNewton")


def ptylab_available() -> bool:
    """True when PtyLab can be imported."""
    try:
        import PtyLab  # noqa: F401
    except ImportError:
        return False
    return True


def _import_ptylab():
    try:
        import PtyLab
        from PtyLab import Engines
        from PtyLab.Monitor.Monitor import DummyMonitor
    except ImportError as err:
        raise ImportError(
            "the PtyLab baseline needs the optional test dependency 'ptylab' "
            "(pip install ptylab==0.3.7); it is imported as 'PtyLab'"
        ) from err
    return PtyLab, Engines, DummyMonitor


def known_pupil_modes(
    stack: xr.Dataset,
    zernike_noll: tuple[int, ...] | None = None,
    zernike_rad: tuple[float, ...] | None = None,
) -> np.ndarray:
    """Known pupil of each coherence mode, weighted by sqrt(w_m), in PtyLab's convention.

    Parameters
    ----------
    stack : xarray.Dataset
        An ``fpxm.stack`` store (calibrations, ``mode_offset``, ``mode_weight``).
    zernike_noll, zernike_rad : tuple, optional
        Aberrations (Noll indices, RMS coefficients [rad]); default: the stack's ground truth.

    Returns
    -------
    (mode, n, n) complex64
        ``sqrt(w_m) P(-g - o_m)`` on the centred (fftshifted) image-window grid.
    """
    if zernike_noll is None or zernike_rad is None:
        truth = stack.attrs.get("ground_truth", {})
        if "zernike_noll" not in truth:
            raise ValueError(
                "PtyLab baseline: no known pupil: pass zernike_noll/zernike_rad (the stack "
                "carries no ground truth)"
            )
        zernike_noll, zernike_rad = truth["zernike_noll"], truth["zernike_rad"]
    geom = geometry_from_stack(stack)
    mrad = geom.mrad_per_px
    modes = torch.from_numpy(np.asarray(stack["mode_offset"].values, float) / mrad)
    pup = pupil_stack(
        geom,
        torch.zeros(1, 2, dtype=torch.float64),
        modes,
        zernike_noll=tuple(int(j) for j in zernike_noll),
        zernike_coeffs=torch.tensor([float(c) for c in zernike_rad], dtype=torch.float64),
    )[0].numpy()  # (M, n, n), FFT order
    weight = np.sqrt(np.asarray(stack["mode_weight"].values, float))[:, None, None]
    reflected = np.roll(np.flip(pup, (-2, -1)), 1, (-2, -1))  # P(-g), FFT order
    return np.fft.fftshift(weight * reflected, axes=(-2, -1)).astype(np.complex64)


def _write_fpm_file(path: Path, images: np.ndarray, stack: xr.Dataset, geom) -> None:
    """PtyLab's FPM HDF5 input: pupil shifts as equivalent LED positions (SI units)."""
    shifts_px = np.asarray(stack["pupil_shift"].values, float) / geom.mrad_per_px
    sines = shifts_px * geom.wavelength_nm * geom.dq  # direction sines of the LEDs
    zled = 1.0  # m (any distance: only the direction sines enter)
    encoder = sines * zled / np.sqrt(1.0 - (sines**2).sum(-1, keepdims=True))
    with h5py.File(path, "w") as f:
        f["ptychogram"] = images.astype(np.float32)
        f["wavelength"] = geom.wavelength_nm * 1e-9
        f["encoder"] = encoder
        f["dxd"] = geom.pixel_size_nm * geom.n_object / geom.n_image * 1e-9
        f["zled"] = zled
        f["magnification"] = 1.0
        f["NA"] = geom.aperture_rad


def ptylab_reconstruct(
    stack: xr.Dataset,
    iterations: int = 100,
    *,
    efield_index: int = 0,
    zernike_noll: tuple[int, ...] | None = None,
    zernike_rad: tuple[float, ...] | None = None,
    engine: str = "mPIE",
    beta_object: float = 1.0,
    seed: int = 0,
) -> dict:
    """Reconstruct one field state of an ``fpxm.stack`` with PtyLab and a known pupil.

    Parameters
    ----------
    stack : xarray.Dataset
        ``fpxm.stack`` store (``image (efield, shot, row, col)``, ``pupil_shift`` [mrad], modes).
    iterations : int
        PtyLab iterations (one = one update from every image, as one model evaluation of
        :func:`scopeflow.fpxm.reconstruct.fp_reconstruct`).
    efield_index : int
        Field state reconstructed.
    zernike_noll, zernike_rad : tuple, optional
        Known aberrations; default the stack's ground truth. The pupil is fixed (no update).
    engine : {"mPIE", "qNewton"}
        PtyLab engine (both with their FPM update rules).
    beta_object : float
        Object step size. Tuned on the bench data (256², 7x7, 1e4 photons/px, 100 iterations):
        mPIE with 1.0 reached NRMSE 0.014, its default 0.25 0.038, qNewton (default 1.0) 0.040.
    seed : int
        Seed of numpy's global generator, which PtyLab's initial guesses and mPIE use.

    Returns
    -------
    dict
        ``field`` (N, N) complex128 on the object grid, in the units of
        :func:`~scopeflow.fpxm.reconstruct.reconstruct` (images normalised by their mean);
        ``seconds`` (engine run, setup excluded), ``setup_seconds``, ``iterations``, ``error``
        (PtyLab's error per iteration).
    """
    if engine not in _ENGINES:
        raise ValueError(f"PtyLab engine {engine!r} not in {_ENGINES}")
    if stack["image"].dims != ("efield", "shot", "row", "col"):
        raise ValueError(f"fpxm stack image dims {stack['image'].dims} != (efield, shot, row, col)")
    ptylab, engines, dummy_monitor = _import_ptylab()
    geom = geometry_from_stack(stack)
    images = np.asarray(stack["image"].values[efield_index], dtype=np.float64)
    if not np.all(np.isfinite(images)):
        raise ValueError("fpxm stack 'image' contains NaN/inf")
    scale = float(images.mean())
    probe = known_pupil_modes(stack, zernike_noll, zernike_rad)
    t0 = time.perf_counter()
    # PtyLab draws its initial noise and mPIE momentum steps from numpy's global generator
    np.random.seed(seed)  # noqa: NPY002
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        path = Path(tmp) / "fpxm.hdf5"
        _write_fpm_file(path, images, stack, geom)
        data = ptylab.ExperimentalData(path, "FPM")
        params = ptylab.Params()
        params.gpuSwitch = False
        params.positionOrder = "NA"  # bright, central pupil positions first
        params.probeBoundary = False
        rec = ptylab.Reconstruction(data, params)
        rec.No = geom.n_object  # spectrum on our object grid (periodic window, no padding)
        rec.npsm = probe.shape[0]
        rec.initializeObjectProbe()
        rec.positions0 = rec.positions.copy()
        rec.probe = probe[None, None, :, None].copy()  # max |P| = 1, as PtyLab's own pupils
        eng = getattr(engines, engine)(rec, data, params, dummy_monitor())
        eng.numIterations = int(iterations)
        eng.betaProbe = 0.0  # known pupil: no probe update
        eng.betaObject = float(beta_object)
        t_setup = time.perf_counter() - t0
        t1 = time.perf_counter()
        eng.reconstruct()
        seconds = time.perf_counter() - t1
    spec = np.asarray(rec.object[0, 0, 0, 0], dtype=np.complex128)
    axes = (-2, -1)
    field = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(spec, axes), norm="ortho"), axes)
    field *= geom.n_object / geom.n_image / math.sqrt(scale)
    return {
        "field": field,
        "seconds": seconds,
        "setup_seconds": t_setup,
        "iterations": int(iterations),
        "error": np.asarray(rec.error, dtype=float),
    }
