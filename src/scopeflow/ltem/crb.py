"""Joint Cramer-Rao bound of the image shifts with the phase and the other parameters unknown.

The known-phase bound (:func:`scopeflow.ltem.uncertainty.shift_crb`) is only a floor: an
estimator that must also recover the phase (every pixel), the gains, the defocus offsets and
the rotations can do no better than the shift block of the *joint* inverse Fisher matrix
(Cramer 1946; Rao 1945; e.g. Kay, *Fundamentals of Statistical Signal Processing: Estimation
Theory*, Prentice Hall 1993, ch. 3). For Poisson data of mean ``mu(theta)``

    F = J^T diag(1 / mu) J,    J = d mu / d theta,

with ``theta = (phi, eta)``: the phase map ``phi`` (``rows cols`` unknowns) and a few scalars
``eta`` (shifts, gains, defocus offsets, rotations, each expressed in an orthonormal basis of
the directions the model can actually move: the frame and defocus-scale pinning of
:class:`scopeflow.ltem.model.ForwardModel` leave null directions in the raw parameters). The
phase block is eliminated by the Schur complement

    S = F_ee - F_ep F_pp^+ F_pe,    cov(eta) >= S^-1,

where each column of ``F_pp^+ F_pe`` is solved by preconditioned conjugate gradients with
Fisher-vector products ``F v = J^T ((J v) / mu)`` from one forward-mode (``torch.func.jvp``)
and one reverse-mode (``torch.func.vjp``) pass: no matrix of size ``(rows cols)^2`` is formed.
The constant phase is a null direction of ``F_pp``; the right-hand sides are orthogonal to it,
and CG started from zero stays in the range (the pseudo-inverse). The preconditioner is the
weak-phase Fourier diagonal ``D(q) = sum_k c_k 4 E_k^2 sin^2 chi_k(q)`` (exact for the TIE-regime
low frequencies of a pure phase object, where the information is weakest). Truncated CG
*under*-estimates ``F_ep F_pp^+ F_pe`` (the CG energy increases monotonically), so a truncated
bound errs low: it stays a valid lower bound.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch

from scopeflow.ltem.model import SCALES, ForwardModel, Series
from scopeflow.optics.transfer import aberration_phase, coherence_envelope
from scopeflow.optics.wavelength import electron_wavelength

__all__ = ["joint_shift_crb", "fisher_dense", "model_at_truth"]

log = logging.getLogger(__name__)

#: scalar parameter groups eliminated with the phase, when the model refines them
NUISANCE = ("gain", "defocus", "rotation", "logmag", "background")


def _group_basis(model: ForwardModel, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal raw directions of parameter group ``name`` that change the physical values.

    Returns
    -------
    basis : (k, *raw.shape) tensor
        Raw-parameter directions (orthonormal).
    phys : (k, ...) tensor
        The physical change of each (e.g. shift [px]) per unit raw step.
    """
    raw = model.params[name]
    i = 1 if name.endswith("_flip") else 0
    base = name.removesuffix("_flip")

    def physical(p):
        if base == "shift":
            return model.alignment(p, i)[0]
        if base == "rotation":
            return model.alignment(p, i)[1]
        if base == "logmag":
            return torch.log(model.alignment(p, i)[2])
        if base == "defocus":
            return model.defocus(p, i)
        return p[name]

    p0 = dict(model.params)
    y0 = physical(p0).detach().double().reshape(-1)
    cols = []
    for j in range(raw.numel()):
        e = torch.zeros(raw.numel(), dtype=raw.dtype)
        e[j] = 1.0
        p = dict(p0)
        p[name] = raw + e.reshape(raw.shape)
        cols.append(physical(p).detach().double().reshape(-1) - y0)
    lin = torch.stack(cols, dim=1)  # (n_phys, n_raw), linear maps: exact differences
    _, s, vh = torch.linalg.svd(lin, full_matrices=False)
    keep = s > 1e-6 * s.max() if s.numel() and s.max() > 0 else s > 0
    basis = vh[keep].to(raw.dtype)
    return basis.reshape(-1, *raw.shape), (lin @ vh[keep].T).T


def _weak_phase_diagonal(model: ForwardModel) -> torch.Tensor:
    """``D(q) = sum_k c_k 4 E_k(q)^2 sin^2 chi_k(q)`` (module docstring), (rows, cols)."""
    p = model.params
    d = torch.zeros(model.shape, dtype=torch.float64, device=model.device)
    for i in range(len(model.series)):
        df = model.defocus(p, i).detach()[:, None, None]
        chi = aberration_phase(model.qy, model.qx, model.wavelength, df, model.cs)
        env = coherence_envelope(
            model.qy, model.qx, model.wavelength, df, model.cs, model.theta_c(p), model.spread
        )
        c = model.counts[i].double()[:, None, None]
        d = d + (4 * c * env.double() ** 2 * torch.sin(chi.double()) ** 2).sum(0)
    return d


class _Fisher:
    """Fisher-vector products of a model's Poisson likelihood in (phase, scalars) coordinates."""

    def __init__(self, model: ForwardModel, groups: list[str]):
        self.model = model
        self.base = {k: v.detach() for k, v in model.params.items()}
        self.maps = [k for k in ("phase", "phase_m") if k in model.refine and k in self.base]
        self.bases, self.phys, self.labels = [], {}, []
        for g in groups:
            b, ph = _group_basis(model, g)
            self.phys[g] = (len(self.bases), ph)
            for j in range(b.shape[0]):
                self.bases.append((g, b[j]))
                self.labels.append(f"{g}[{j}]")
        self.npix = int(np.prod(model.shape))
        self.n_maps = len(self.maps) * self.npix
        with torch.no_grad():
            self.mu = self._mu(torch.zeros(self.n_maps + len(self.bases)))
        self.w = 1.0 / self.mu.clamp_min(1e-6)
        _, self._vjp = torch.func.vjp(self._mu, torch.zeros(self.n_maps + len(self.bases)))

    def _mu(self, theta: torch.Tensor) -> torch.Tensor:
        p = dict(self.base)
        for j, k in enumerate(self.maps):
            p[k] = self.base[k] + theta[j * self.npix : (j + 1) * self.npix].reshape(
                self.model.shape
            )
        for j, (g, b) in enumerate(self.bases):
            p[g] = p[g] + theta[self.n_maps + j] * b
        return torch.cat(
            [self.model.predict(p, i).reshape(-1) for i in range(len(self.model.series))]
        )

    def jv(self, v: torch.Tensor) -> torch.Tensor:
        zero = torch.zeros(self.n_maps + len(self.bases))
        with warnings.catch_warnings():
            # torch's forward-mode AD loads its jvp decompositions through the deprecated
            # torch.jit.script on first use (torch internals, nothing of ours)
            warnings.filterwarnings("ignore", "`torch.jit.script`", DeprecationWarning)
            return torch.func.jvp(self._mu, (zero,), (v.to(torch.float32),))[1]

    def fv(self, v: torch.Tensor) -> torch.Tensor:
        """F v (float64 result) for a full-coordinate vector v."""
        return self._vjp(self.jv(v) * self.w)[0].double()

    def scalar_dir(self, j: int) -> torch.Tensor:
        v = torch.zeros(self.n_maps + len(self.bases), dtype=torch.float64)
        v[self.n_maps + j] = 1.0
        return v


def _pcg(apply, b, precond, tol, max_iter):
    """Preconditioned CG for ``A x = b`` (A symmetric positive semi-definite), from x = 0."""
    x = torch.zeros_like(b)
    r = b.clone()
    z = precond(r)
    p = z.clone()
    rz = torch.dot(r, z)
    b_norm = torch.linalg.norm(b)
    it = 0
    while it < max_iter:
        it += 1
        ap = apply(p)
        alpha = rz / torch.dot(p, ap)
        x = x + alpha * p
        r = r - alpha * ap
        if torch.linalg.norm(r) <= tol * b_norm:
            break
        z = precond(r)
        rz_new = torch.dot(r, z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, it, float(torch.linalg.norm(r) / b_norm)


def joint_shift_crb(
    model: ForwardModel,
    *,
    series: int = 0,
    cg_tol: float = 1e-3,
    cg_max_iter: int = 300,
    nuisance: tuple[str, ...] = NUISANCE,
) -> dict:
    """Cramer-Rao bounds of the shifts of one series: joint, and with everything else known.

    Parameters
    ----------
    model : ForwardModel
        Parameters set to the truth (phase, alignment, defocus); ``model.refine`` names the
        unknowns (``phase``, ``shift`` and any of :data:`NUISANCE`). The Poisson mean is the
        model's prediction, so ``model.counts`` must be the dose (mean counts per pixel).
    series : int
        Which series' shifts.
    cg_tol : float
        Relative residual at which each CG solve stops.
    cg_max_iter : int
    nuisance : tuple of str
        Scalar groups eliminated with the phase (those the model refines); ``()`` eliminates
        the phase alone (one CG solve per shift direction instead of one per scalar).

    Returns
    -------
    dict
        ``joint`` (n, 2) [px]: standard-deviation bound of each image's (row, col) shift with
        the phase and the nuisances unknown; ``phase_known`` (n, 2): with the phase known but
        the nuisances unknown; ``all_known`` (n, 2): everything else known (the floor);
        ``cg_iterations`` (list), ``cg_residual`` (max).
    """
    sname = "shift" + model.suffix(series)
    groups = [sname] + [
        g + model.suffix(i)
        for i in range(len(model.series))
        for g in nuisance
        if g in model.refine and g + model.suffix(i) in model.params
    ]
    fis = _Fisher(model, groups)
    k = len(fis.bases)
    # scalar-scalar block and scalar-phase columns
    cols = [fis.fv(fis.scalar_dir(j)) for j in range(k)]
    f_ee = torch.stack([c[fis.n_maps :] for c in cols], dim=1)
    f_pe = torch.stack([c[: fis.n_maps] for c in cols], dim=1)
    diag = _weak_phase_diagonal(model)
    floor = 1e-6 * float(diag.max())
    n_maps = len(fis.maps)

    def apply(v):
        full = torch.zeros(fis.n_maps + k, dtype=torch.float64)
        full[: fis.n_maps] = v
        return fis.fv(full)[: fis.n_maps]

    def precond(r):
        out = r.reshape(n_maps, *model.shape)
        return torch.fft.ifft2(torch.fft.fft2(out) / (diag + floor)).real.reshape(-1)

    schur_term = torch.zeros(k, k, dtype=torch.float64)
    its, res = [], 0.0
    for j in range(k):
        x, it, r = _pcg(apply, f_pe[:, j], precond, cg_tol, cg_max_iter)
        its.append(it)
        res = max(res, r)
        schur_term[:, j] = f_pe.T @ x
    schur_term = 0.5 * (schur_term + schur_term.T)
    ns = fis.phys[sname][1].shape[0]  # shift directions come first
    phys = fis.phys[sname][1]  # (ns, n*2): physical shift per unit coefficient

    def shift_sigma(info):
        cov = torch.linalg.inv(info)[:ns, :ns]
        cov_s = phys.T @ cov @ phys  # (n*2, n*2)
        return torch.sqrt(torch.clamp(torch.diagonal(cov_s), min=0)).reshape(-1, 2).numpy()

    out = {
        "joint": shift_sigma(f_ee - schur_term),
        "phase_known": shift_sigma(f_ee),
        "all_known": shift_sigma(f_ee[:ns, :ns]),
        "cg_iterations": its,
        "cg_residual": res,
        "unknowns": ["phase"] * bool(fis.maps) + fis.labels,
    }
    log.info(
        "shift CRB (max over images, px): joint %.4f, phase known %.4f, all known %.4f "
        "(CG iterations %s, residual %.1e)",
        out["joint"].max(),
        out["phase_known"].max(),
        out["all_known"].max(),
        its,
        res,
    )
    return out


def fisher_dense(model: ForwardModel, groups: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Dense Fisher matrix in the coordinates of :func:`joint_shift_crb` (small grids only).

    Returns
    -------
    fisher : (n_maps rows cols + k, n_maps rows cols + k) ndarray
    phys : (k_0, n*2) ndarray
        Physical shift per unit coefficient of the first group (when it is a shift group).
    """
    fis = _Fisher(model, groups)
    n = fis.n_maps + len(fis.bases)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit.script`", DeprecationWarning)
        jac = torch.func.jacfwd(fis._mu)(torch.zeros(n)).double()
    fisher = jac.T @ (jac * fis.w.double()[:, None])
    return fisher.numpy(), fis.phys[groups[0]][1].numpy()


def model_at_truth(ds, refine=frozenset({"phase", "shift"})) -> ForwardModel:
    """Forward model of a simulated ``ltem.series`` store with every parameter at its truth.

    The Poisson mean is the model's prediction at the true phase, amplitude, defocus, shifts
    and rotations, with ``counts`` the store's dose; the images themselves are not used.

    Parameters
    ----------
    ds : xarray.Dataset
        ``ltem.series`` store with ``true_*`` variables and ``attrs["dose"] > 0``.
    refine : set of str
        The unknowns (``phase``, ``shift`` and any of :data:`NUISANCE`).

    Returns
    -------
    ForwardModel
    """
    dose = float(ds.attrs.get("dose") or 0)
    if dose <= 0 or "true_phase_m" not in ds:
        raise ValueError("model_at_truth needs a simulated store with ground truth and a dose > 0")
    n = ds.sizes["defocus"]
    series = Series(
        torch.full((n, ds.sizes["row"], ds.sizes["col"]), dose),
        np.asarray(ds["true_defocus_nm"].values, dtype=np.float64),
    )
    model = ForwardModel(
        [series],
        float(ds.attrs["pixel_size_nm"]),
        electron_wavelength(float(ds.attrs["energy_ev"])),
        cs_nm=float(ds.attrs["cs_mm"]) * 1e6,
        theta_c=float(ds.attrs["theta_c_rad"]),
        defocus_spread_nm=float(ds.attrs["defocus_spread_nm"]),
        refine=set(refine),
    )
    model.set_phase((ds["true_phase_m"] + ds["true_phase_e"]).values)
    la = np.log(np.clip(ds["true_amplitude"].values, 1e-6, None))
    model.set_log_amplitude(la - la.mean())
    with torch.no_grad():
        model.params["shift"].copy_(torch.as_tensor(ds["true_shift_px"].values))
        rot = ds["true_rotation_deg"].values / SCALES["rotation"]
        model.params["rotation"].copy_(torch.as_tensor(rot))
        logmag = np.log(ds["true_magnification"].values) / SCALES["logmag"]
        model.params["logmag"].copy_(torch.as_tensor(logmag))
    return model
