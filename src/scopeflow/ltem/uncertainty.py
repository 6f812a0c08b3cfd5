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
"""

from __future__ import annotations

import numpy as np
import torch

from scopeflow.ltem.ad import Objective, optimize
from scopeflow.ltem.analyze import induction_from_phase
from scopeflow.ltem.model import ForwardModel

__all__ = ["bootstrap"]


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
