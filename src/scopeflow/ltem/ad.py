"""AD phase retrieval: objective, regularisation, optimiser loop (torch).

Objective (per pixel of the field of view, so its scale does not depend on the image size):

    J = [ sum_k sum_r NLL(y_kr | mu_kr) + lambda (TV_eps(phi) [+ TV_eps(phi_m)]
          + f_A TV_eps(log A)) ] / (rows cols)

- NLL: Poisson ``mu - y - y log(mu / y)`` (the deviance / 2, zero at ``mu = y``) or Gaussian
  ``(y - mu)^2 / 2 sigma_k^2`` with ``sigma_k`` estimated per image (Immerkaer 1996);
- smoothed total variation ``TV_eps(u) = sum_r sqrt(|grad u|^2 + eps^2) - eps`` (periodic
  differences): edge-preserving, quadratic below ``eps`` per pixel, so the objective stays smooth
  for L-BFGS. Without it the AD fit overfits Poisson noise (the tests show it);
- the weight lambda is fixed, or chosen by the discrepancy principle (Morozov): the smallest
  regularisation at which the normalised Pearson statistic ``chi2 / N = 1`` (N measured pixels),
  found by a secant search in ``log lambda`` with warm starts.

Optimiser: L-BFGS with strong-Wolfe line search (torch.optim.LBFGS), run in blocks of 10
iterations; **convergence criterion**: the relative decrease of J over a block is below ``tol``
(or the line search cannot make progress), else ``max_iter`` iterations. A non-finite objective
or a block that *increases* J restores the best parameters and falls back to Adam for the
remaining iterations.

Debiasing (:func:`debias_phase_scale`): TV shrinks the phase contrast (a bias of the phase
scale that grows with lambda / dose); a final unregularised maximum-likelihood fit of one global
factor of the phase map(s), all else fixed, removes that shrinkage without refitting noise (one
parameter against 10^5 pixels), in the spirit of the relaxed/debiased lasso (Meinshausen,
Comput. Stat. Data Anal. 52, 374 (2007), doi:10.1016/j.csda.2006.12.019). The shrinkage is
not uniform: the data's information on the low spatial frequencies grows as ``df^2 q^4`` (TIE
regime), so lambda scales as ``df^2`` to spare them; beyond the first zero of the contrast
transfer it does not grow with ``df``, and at small defocus that lambda lets the phase fit noise
at high frequencies (white, up to Nyquist). A second, defocus-independent TV term
``lambda_hp TV_eps(H phi)`` acts on the phase high-passed (``H``) above the band of
:func:`low_frequency_band` (about ``sqrt(N)`` modes for ``N`` measured pixels: the modes left
to the data and the df^2-scaled term), so it suppresses that noise without shrinking the
low-frequency phase. Dose scaling (``reconstruct.run_ad``, dose from :func:`effective_dose`):
lambda follows the low-frequency information, ``df^2 dose``, so that its relative shrinkage is
the same at every dose (fixed, it shrank the converged 1 mm / 10 e/px phase to a scale of 0.92);
lambda_hp grows as ``sqrt(dose)``: the phase noise falls as ``1/sqrt(dose)`` while the
likelihood's curvature grows as ``dose``, and the threshold of a TV/lasso denoiser is
proportional to the noise level (Rudin, Osher & Fatemi, Physica D 60, 259 (1992),
doi:10.1016/0167-2789(92)90242-F; Donoho & Johnstone, Biometrika 81, 425 (1994),
doi:10.1093/biomet/81.3.425).
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = [
    "smoothed_tv",
    "Objective",
    "optimize",
    "discrepancy_search",
    "noise_variance",
    "debias_phase_scale",
    "low_frequency_band",
    "effective_dose",
]

log = logging.getLogger(__name__)

BLOCK = 10  # L-BFGS iterations between convergence checks / progress reports


def smoothed_tv(u: torch.Tensor, eps: float) -> torch.Tensor:
    """Smoothed isotropic total variation with periodic forward differences.

    Parameters
    ----------
    u : (rows, cols) torch.Tensor
    eps : float
        Smoothing (same units as u per pixel).

    Returns
    -------
    torch.Tensor, scalar
    """
    dy = torch.roll(u, -1, 0) - u
    dx = torch.roll(u, -1, 1) - u
    return (torch.sqrt(dx * dx + dy * dy + eps * eps) - eps).sum(dtype=torch.float64)


class Objective:
    """Negative log-posterior of a :class:`ForwardModel` given the data.

    Parameters
    ----------
    model : ForwardModel
    likelihood : {"poisson", "gaussian"}
    tv_weight : float
        lambda (per pixel, NLL units).
    tv_epsilon : float [rad]
    amplitude_factor : float
        f_A.
    regularize : bool
    highpass_weight : float
        lambda_hp of the TV of the high-passed phase (per pixel, NLL units).
    highpass_band : float [cycles/px]
        Phase frequencies below this are not seen by the high-pass term.
    """

    def __init__(
        self,
        model,
        likelihood,
        tv_weight,
        tv_epsilon,
        amplitude_factor,
        regularize,
        highpass_weight=0.0,
        highpass_band=0.0,
    ):
        self.model = model
        self.likelihood = likelihood
        self.tv_weight = float(tv_weight)
        self.eps = float(tv_epsilon)
        self.famp = float(amplitude_factor)
        self.regularize = regularize
        self.highpass_weight = float(highpass_weight)
        q = torch.sqrt(model.qy_px**2 + model.qx_px**2)
        self.highpass = (q >= highpass_band).to(torch.float32)
        self.npix = float(np.prod(model.shape))
        self.sigma2 = []
        self.set_data([s.images.to(model.device) for s in model.series])
        if likelihood == "gaussian":
            self.sigma2 = [noise_variance(y) for y in self.data]

    def set_data(self, data: list[torch.Tensor]) -> None:
        """Replace the measured images (one (n, rows, cols) tensor per series)."""
        self.data = data
        self.ylogy = [torch.where(y > 0, y * torch.log(y.clamp_min(1e-30)), 0.0) for y in data]

    def nll(self, p) -> torch.Tensor:
        """Negative log-likelihood (Poisson deviance/2 or Gaussian), summed over all images."""
        total = 0.0
        for i, y in enumerate(self.data):
            mu = self.model.predict(p, i)
            if self.likelihood == "poisson":
                mu = mu.clamp_min(1e-6)
                total = total + (mu - y - y * torch.log(mu) + self.ylogy[i]).sum(
                    dtype=torch.float64
                )
            else:
                total = total + ((y - mu) ** 2 / (2 * self.sigma2[i][:, None, None])).sum(
                    dtype=torch.float64
                )
        return total

    def penalty(self, p) -> torch.Tensor:
        """lambda (TV(phase) [+ TV(phase_m)] + f_A TV(log A)) + lambda_hp TV(H phase) [...]."""
        zero = torch.zeros((), dtype=torch.float64, device=self.model.device)
        if not self.regularize:
            return zero
        maps = [self.model.phase_map(p)] + (
            [self.model.phase_map(p, "phase_m")] if "phase_m" in p else []
        )
        tv = sum((smoothed_tv(m, self.eps) for m in maps), zero)
        if "log_amp" in self.model.trainable():
            tv = tv + self.famp * smoothed_tv(self.model.log_amplitude(p), self.eps)
        out = self.tv_weight * tv
        if self.highpass_weight > 0:
            hp = sum((smoothed_tv(self._highpassed(m), self.eps) for m in maps), zero)
            out = out + self.highpass_weight * hp
        return out

    def _highpassed(self, phase: torch.Tensor) -> torch.Tensor:
        return torch.fft.ifft2(torch.fft.fft2(phase) * self.highpass).real

    def __call__(self, p) -> torch.Tensor:
        return (self.nll(p) + self.penalty(p)) / self.npix

    @torch.no_grad()
    def chi2_per_pixel(self, p) -> float:
        """Pearson chi^2 / N of the fit (1 expected for a correct model and noise level)."""
        chi2, n = 0.0, 0
        for i, y in enumerate(self.data):
            mu = self.model.predict(p, i)
            var = (
                mu.clamp_min(1e-6)
                if self.likelihood == "poisson"
                else self.sigma2[i][:, None, None]
            )
            chi2 += float(((y - mu) ** 2 / var).sum())
            n += y.numel()
        return chi2 / n


def noise_variance(y: torch.Tensor) -> torch.Tensor:
    """Per-image white-noise variance (Immerkaer, CVIU 64, 300 (1996),
    doi:10.1006/cviu.1996.0060: mean |Laplacian-difference| of a 3x3 mask), floored at
    (1e-3 mean)^2 so that noise-free data keep a finite weight."""
    from scipy.ndimage import convolve

    mask = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
    arr = y.detach().cpu().numpy().astype(np.float64)
    sig = np.array(
        [np.sqrt(np.pi / 2) / 6 * np.abs(convolve(a, mask, mode="wrap")).mean() for a in arr]
    )
    sig = np.maximum(sig, 1e-3 * arr.mean(axis=(1, 2)))
    return torch.as_tensor(sig**2, dtype=torch.float32, device=y.device)


def _snapshot(params, names):
    return {k: params[k].detach().clone() for k in names}


def optimize(
    objective: Objective,
    *,
    max_iter: int,
    tol: float,
    method: str = "lbfgs",
    adam_lr: float = 0.02,
    progress: bool = True,
) -> dict:
    """Minimise the objective over the model's trainable parameters (in place).

    Parameters
    ----------
    objective : Objective
    max_iter : int
        Maximum optimiser iterations (L-BFGS iterations or Adam steps).
    tol : float
        Relative decrease of J over a block of 10 iterations below which it stops.
    method : {"lbfgs", "adam"}
    adam_lr : float
        Adam learning rate (on the raw, O(1)-scaled parameters).
    progress : bool
        Show a tqdm bar (logging always reports each block).

    Returns
    -------
    dict: ``iterations``, ``evaluations``, ``objective``, ``reason``, ``optimizer``, ``seconds``
    """
    model = objective.model
    names = model.trainable()
    params = model.params
    for k in names:
        params[k].requires_grad_(True)
    t0 = time.perf_counter()
    evals = 0

    def closure():
        nonlocal evals
        opt.zero_grad()
        loss = objective(params)
        loss.backward()
        evals += 1
        return loss

    with torch.no_grad():
        best = float(objective(params))
    best_p = _snapshot(params, names)
    it, reason, used = 0, f"max_iter={max_iter} reached", method
    bar = tqdm(total=max_iter, desc=f"ltem AD ({method})", disable=not progress, leave=False)
    if method == "lbfgs":
        opt = torch.optim.LBFGS(
            [params[k] for k in names],
            lr=1.0,
            max_iter=BLOCK,
            max_eval=4 * BLOCK,
            history_size=20,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-10,
            tolerance_change=1e-12,
        )
        prev = best
        while it < max_iter:
            opt.step(closure)
            n_done = opt.state[opt._params[0]]["n_iter"] - it
            it += n_done
            bar.update(n_done)
            with torch.no_grad():
                cur = float(objective(params))
            log.info("AD L-BFGS iter %d: J = %.6g", it, cur)
            if not math.isfinite(cur) or cur > prev * (1 + 1e-6) + 1e-12:
                log.warning("L-BFGS diverged (J = %s); restoring and falling back to Adam", cur)
                with torch.no_grad():
                    for k in names:
                        params[k].copy_(best_p[k])
                used = "lbfgs+adam"
                method = "adam"
                break
            if cur < best:
                best, best_p = cur, _snapshot(params, names)
            if n_done == 0:
                reason = "converged: L-BFGS line search made no further progress"
                break
            if (prev - cur) <= tol * abs(prev):
                reason = f"converged: relative decrease {(prev - cur) / abs(prev):.2e} < tol"
                break
            prev = cur
    if method == "adam":
        opt = torch.optim.Adam([params[k] for k in names], lr=adam_lr)
        prev = best
        while it < max_iter:
            for _ in range(BLOCK):
                closure()
                opt.step()
            it += BLOCK
            bar.update(BLOCK)
            with torch.no_grad():
                cur = float(objective(params))
            log.info("AD Adam iter %d: J = %.6g", it, cur)
            if math.isfinite(cur) and cur < best:
                best, best_p = cur, _snapshot(params, names)
            if math.isfinite(cur) and abs(prev - cur) <= tol * abs(prev):
                reason = f"converged: relative change {abs(prev - cur) / abs(prev):.2e} < tol"
                break
            prev = cur
    bar.close()
    with torch.no_grad():
        for k in names:
            params[k].copy_(best_p[k])
            params[k].requires_grad_(False)
    return {
        "iterations": int(it),
        "evaluations": int(evals),
        "objective": float(best),
        "reason": reason,
        "optimizer": used,
        "seconds": time.perf_counter() - t0,
    }


def discrepancy_search(
    objective: Objective,
    *,
    max_iter: int,
    tol: float,
    n_steps: int = 5,
    target: float = 1.0,
    progress: bool = True,
) -> dict:
    """Choose lambda by the discrepancy principle (chi2/N = target), warm-started fits.

    A secant search in ``(log lambda, chi2/N - target)`` from the objective's current weight
    and 4x it; each step refits from the previous solution with ``max_iter // 2`` iterations.

    Returns
    -------
    dict: the last :func:`optimize` result plus ``tv_weight`` and ``chi2_per_pixel``, and
    ``history`` [(lambda, chi2/N), ...]
    """
    history = []
    info = optimize(objective, max_iter=max_iter, tol=tol, progress=progress)
    lam0 = objective.tv_weight
    history.append((lam0, objective.chi2_per_pixel(objective.model.params)))
    lam = lam0 * (4.0 if history[-1][1] < target else 0.25)
    for _ in range(n_steps):
        objective.tv_weight = lam
        info = optimize(objective, max_iter=max(max_iter // 2, 1), tol=tol, progress=progress)
        history.append((lam, objective.chi2_per_pixel(objective.model.params)))
        log.info("discrepancy: lambda = %.4g -> chi2/N = %.4f", *history[-1])
        (l1, c1), (l2, c2) = history[-2], history[-1]
        if abs(c2 - target) < 0.002 or c1 == c2:
            break
        x1, x2 = math.log(l1), math.log(l2)
        x3 = x2 - (c2 - target) * (x2 - x1) / (c2 - c1)
        lam = math.exp(float(np.clip(x3, x2 - 3, x2 + 3)))
    best = min(history, key=lambda h: abs(h[1] - target))
    if best[0] != objective.tv_weight:
        objective.tv_weight = best[0]
        info = optimize(objective, max_iter=max(max_iter // 2, 1), tol=tol, progress=progress)
    info.update(
        tv_weight=objective.tv_weight,
        chi2_per_pixel=objective.chi2_per_pixel(objective.model.params),
        history=history,
    )
    return info


def debias_phase_scale(objective: Objective, max_iter: int = 20) -> float:
    """Rescale the phase map(s) by the maximum-likelihood global factor (module docstring).

    With a high-pass TV term only the part of the phase below its band is rescaled: the
    maximum-likelihood factor of the high-passed part would grow with the noise it lets back
    in (measured: it doubles the high-frequency error at 200 um defocus).

    Parameters
    ----------
    objective : Objective
        Objective of the converged fit; only its likelihood term is used.
    max_iter : int
        L-BFGS iterations on the factor.

    Returns
    -------
    float
        The factor applied to the low-frequency part (the phase scale; 1 = no TV shrinkage).
    """
    model = objective.model
    params = model.params
    names = [k for k in ("phase", "phase_m") if k in params]
    two = objective.highpass_weight > 0
    parts = {}
    for k in names:
        base = params[k].detach().clone()
        high = objective._highpassed(base) if two else torch.zeros_like(base)
        parts[k] = (base - high, high)
    log_s = torch.zeros(1, dtype=torch.float64, device=model.device, requires_grad=True)
    opt = torch.optim.LBFGS([log_s], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")
    frozen = {k: v.detach() for k, v in params.items()}

    def scaled(k, f):
        low, high = parts[k]
        return low * f[0].to(low.dtype) + high

    def closure():
        opt.zero_grad()
        p = dict(frozen)
        f = torch.exp(log_s)
        for k in names:
            p[k] = scaled(k, f)
        loss = objective.nll(p) / objective.npix
        loss.backward()
        return loss

    opt.step(closure)
    f = torch.exp(log_s.detach())
    with torch.no_grad():
        for k in names:
            params[k].copy_(scaled(k, f))
    log.info("debiased phase scale: x %.4f", float(f[0]))
    return float(f[0])


def effective_dose(objective: Objective) -> float:
    """Mean counts per pixel of the data, or for Gaussian data ``<mean^2 / sigma^2>`` (the
    Poisson dose with the same signal-to-noise ratio)."""
    doses = []
    for i, y in enumerate(objective.data):
        c = y.mean(dim=(1, 2)).double()
        if objective.likelihood == "gaussian":
            c = c * c / objective.sigma2[i].double()
        doses.append(c)
    return float(torch.cat(doses).mean())


def low_frequency_band(shape: tuple[int, int], n_data: int, defocus_nm, wavelength_nm, pixel_nm):
    """Radius [cycles/px] of the low-frequency band refitted without regularisation.

    ``sqrt(n_data)`` real modes (a disc of ``sqrt(n_data) / 2`` complex Fourier coefficients),
    capped at 0.7 times the first zero ``1 / sqrt(lambda max|df|)`` of the phase contrast
    transfer, so that every refitted mode is measured by every defocused image.

    Parameters
    ----------
    shape : (rows, cols)
    n_data : int
        Number of measured pixels (all images).
    defocus_nm : array-like [nm]
    wavelength_nm, pixel_nm : float [nm]

    Returns
    -------
    float [cycles/px]
    """
    rows, cols = shape
    q_modes = math.sqrt(math.sqrt(n_data) / 2 / math.pi / (rows * cols))
    df_max = float(np.max(np.abs(defocus_nm)))
    q_zero = pixel_nm / math.sqrt(wavelength_nm * df_max) if df_max > 0 else 0.5
    return min(q_modes, 0.7 * q_zero)
