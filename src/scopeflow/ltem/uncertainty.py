"""Per-pixel uncertainty of the AD phase and induction: parametric bootstrap.

Method (stated in the output store): draw ``n`` synthetic data sets from the fitted model
(Poisson counts ``y* ~ Poisson(mu)``, or ``mu + sigma N(0, 1)`` for Gaussian data), refit each
from the converged solution with the same objective (``max_iter`` iterations), and take the
per-pixel standard deviation of the refitted phase and of the induction computed from it.
The bootstrap spread includes the effect of the regulariser and the joint refinement of the
microscope parameters (a Hessian diagonal would not, and the inverse-Hessian diagonal is out of
reach for 10^5 unknowns). Limits: with few replicates (default 4) the standard deviation itself
is uncertain by about ``1 / sqrt(2 (n - 1))`` (41 % at n = 4); warm-started, truncated refits
under-estimate the spread if they stop before converging; regularisation bias is not included.

:func:`shift_crb` gives the Cramer-Rao lower bound of the image-shift estimates when everything
else (phase, defocus...) is known: the best any registration can do on Poisson data; the bound
with the phase unknown too is :func:`scopeflow.ltem.crb.joint_shift_crb`.
"""

from __future__ import annotations

import numpy as np
import torch

from scopeflow.ltem.ad import Objective, optimize
from scopeflow.ltem.analyze import induction_from_phase
from scopeflow.ltem.model import ForwardModel

__all__ = ["bootstrap", "shift_crb"]


def bootstrap(
    model: ForwardModel, objective: Objective, *, n: int, max_iter: int, tol: float, seed: int = 0
) -> dict[str, np.ndarray]:
    """Parametric-bootstrap standard deviations of the phase and the induction.

    Parameters
    ----------
    model : ForwardModel
        Converged model (its parameters are restored on return).
    objective : Objective
        The objective it was fitted with (its data are restored on return).
    n : int
        Number of replicates (>= 2).
    max_iter, tol : int, float
        Optimiser settings of each refit.
    seed : int

    Returns
    -------
    dict of (rows, cols) float32 ndarray
        ``phase_ad_sigma`` [rad] (of the total phase of the sample series),
        ``bx_ad_sigma_tnm``, ``by_ad_sigma_tnm`` [T nm] (from the magnetic phase when a flip
        series exists, else from the total phase).
    """
    p = model.params
    saved = {k: v.detach().clone() for k, v in p.items()}
    saved_data = objective.data
    gen = torch.Generator(device=model.device).manual_seed(seed)
    with torch.no_grad():
        mus = [model.predict(p, i).clamp_min(0) for i in range(len(model.series))]
    phases, bx, by = [], [], []
    pixel = model.pixel_size
    try:
        for _ in range(n):
            if objective.likelihood == "poisson":
                data = [torch.poisson(mu, generator=gen) for mu in mus]
            else:
                data = [
                    mu
                    + torch.sqrt(s2)[:, None, None]
                    * torch.randn(mu.shape, generator=gen, device=mu.device)
                    for mu, s2 in zip(mus, objective.sigma2, strict=True)
                ]
            objective.set_data(data)
            with torch.no_grad():
                for k, v in saved.items():
                    p[k].copy_(v)
            optimize(objective, max_iter=max_iter, tol=tol, progress=False)
            with torch.no_grad():
                phase = model.phase(p, 0).cpu().numpy().astype(np.float64)
                mag = model.phase_map(p, "phase_m").cpu().numpy() if model.flip else phase
            phases.append(phase - phase.mean())
            b = induction_from_phase(mag, pixel)
            bx.append(b[0])
            by.append(b[1])
    finally:
        objective.set_data(saved_data)
        with torch.no_grad():
            for k, v in saved.items():
                p[k].copy_(v)

    def sd(stack):
        return np.std(np.stack(stack), axis=0, ddof=1).astype(np.float32)

    return {"phase_ad_sigma": sd(phases), "bx_ad_sigma_tnm": sd(bx), "by_ad_sigma_tnm": sd(by)}


def shift_crb(mean_counts: np.ndarray, reference: int) -> np.ndarray:
    """Cramer-Rao bound of the image shifts of a series, all other parameters known.

    Poisson data of mean ``mu_k``: the Fisher information of a shift ``s_k`` of image ``k`` is
    ``G_k = sum_r grad mu_k grad mu_k^T / mu_k`` (gradients by periodic Fourier derivatives).
    In the model's frame convention (:class:`scopeflow.ltem.model.ForwardModel`: the reference
    image fixed, the other shifts of zero mean), the shifts are ``s = B a`` with ``B`` an
    orthonormal basis of zero-sum vectors over the ``m`` non-reference images, so
    ``cov(s) = B (sum_k B_k B_k^T G_k)^-1 B^T`` (per component pair). With the phase unknown
    the bound can only be larger: this is a floor for the shift errors of the AD fit.

    Parameters
    ----------
    mean_counts : (n, rows, cols) ndarray [counts]
        Noise-free mean images of the series.
    reference : int
        Index of the reference (unshifted) image.

    Returns
    -------
    (n, 2) ndarray [px]
        Standard-deviation bound of the (row, col) shift of every image (0 for the reference).
    """
    mu = np.clip(np.asarray(mean_counts, dtype=np.float64), 1e-12, None)
    n, rows, cols = mu.shape
    others = [k for k in range(n) if k != reference]
    m = len(others)
    qy = 2j * np.pi * np.fft.fftfreq(rows)[:, None]
    qx = 2j * np.pi * np.fft.fftfreq(cols)[None, :]
    g = np.zeros((m, 2, 2))
    for j, k in enumerate(others):
        ft = np.fft.fft2(mu[k])
        d = [np.fft.ifft2(ft * qy).real, np.fft.ifft2(ft * qx).real]
        g[j] = [[np.sum(d[a] * d[b] / mu[k]) for b in range(2)] for a in range(2)]
    # orthonormal basis of zero-sum vectors over the m non-reference images: (m, m - 1)
    basis = np.linalg.svd(np.eye(m) - 1.0 / m)[0][:, : m - 1]
    fisher = np.einsum("ka,kb,kij->aibj", basis, basis, g).reshape(2 * (m - 1), 2 * (m - 1))
    cov_a = np.linalg.inv(fisher).reshape(m - 1, 2, m - 1, 2)
    cov_s = np.einsum("ka,aibj,kb->kij", basis, cov_a, basis)
    out = np.zeros((n, 2))
    out[others] = np.sqrt(np.stack([np.diag(c) for c in cov_s]))
    return out
