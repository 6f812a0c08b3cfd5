"""Stage ``train``: fit :class:`~scopeflow.polar4d.model.Polar4DNet` and the baselines.

Whole structures (all their thicknesses and probe positions) are held out for validation, so the
validation numbers measure generalisation to unseen displacements. Each batch draws patterns,
a dose per pattern (log-uniform in ``dose_range``, Poisson counts), a detector blur and one of the
8 4mm operations (acting on patterns, (dx, dy) and tilt). Baselines (predict-the-mean, PCA +
ridge, linearly calibrated COM) are fitted on the same training patterns (one noisy draw each)
and stored beside the weights, so ``infer`` runs them on the same data.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch
import xarray as xr

from scopeflow.nn import n_parameters, select_device, state_bytes, train_loop
from scopeflow.polar4d.baselines import (
    apply_linear,
    apply_pca_ridge,
    com_mrad,
    fit_linear,
    fit_pca_ridge,
)
from scopeflow.polar4d.metrics import displacement_metrics
from scopeflow.polar4d.model import (
    DISP_SCALE_PM,
    SYMMETRY_OPS,
    Polar4DNet,
    apply_op,
    gaussian_nll_loss,
    op_vectors,
    predict,
)
from scopeflow.polar4d.options import TrainOptions

__all__ = ["train_model", "split_structures", "noisy", "VALIDATION_DOSE"]

#: Dose of the validation patterns [e/probe] (the acceptance point's 1e4).
VALIDATION_DOSE = 1e4


def split_structures(structure: np.ndarray, fraction: float, seed: int):
    """Boolean masks (train, held-out) splitting by whole structures."""
    ids = np.unique(structure)
    rng = np.random.default_rng([seed, 3])
    n_hold = int(round(fraction * len(ids)))
    hold = rng.choice(ids, n_hold, replace=False) if n_hold else np.array([], int)
    held = np.isin(structure, hold)
    return ~held, held


def noisy(intensity: np.ndarray, dose: float, seed: int) -> np.ndarray:
    """Poisson counts at ``dose`` electrons per pattern (``intensity`` sums to ~1)."""
    return np.random.default_rng(seed).poisson(np.clip(intensity, 0, None) * dose).astype("f4")


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma < 0.05:
        return x
    r = torch.arange(-2, 3, dtype=x.dtype)
    g = torch.exp(-0.5 * (r / sigma) ** 2)
    g = g / g.sum()
    x = x.unsqueeze(1)
    x = torch.nn.functional.conv2d(x, g.view(1, 1, 1, 5), padding=(0, 2))
    x = torch.nn.functional.conv2d(x, g.view(1, 1, 5, 1), padding=(2, 0))
    return x.squeeze(1)


def _targets(ts: xr.Dataset) -> np.ndarray:
    """Scaled targets ``(n, 6)``: disp / 20 pm, thickness / 10 nm, tilt [mrad]."""
    return np.concatenate(
        [
            ts["true_disp_pm"].values / DISP_SCALE_PM,
            ts["thickness_nm"].values[:, None] / 10.0,
            ts["tilt_mrad"].values,
        ],
        axis=1,
    ).astype(np.float32)


def train_model(inputs: list[xr.Dataset], opts: TrainOptions) -> xr.Dataset:
    """Stage ``train``: a ``polar4d.model`` store.

    Returns
    -------
    xarray.Dataset
        ``weights (byte)`` uint8 (``torch.save`` of the state_dict), ``loss (step)``, baseline
        parameters (``com_matrix``, ``pca_*``, ``mean_disp_pm``); attrs ``architecture``,
        ``validation`` (held-out metrics at 1e4 e/probe), ``thermal_model``, ``training``.
    """
    (ts,) = inputs
    pats = np.asarray(ts["patterns"].values, np.float32)
    y = _targets(ts)
    tr, ho = split_structures(ts["structure"].values, opts.holdout_fraction, opts.seed)
    kpix = float(ts.attrs["k_pixel_mrad"])
    device = select_device(opts.device)
    torch.manual_seed(opts.seed)
    model = Polar4DNet(kpix, width=opts.width)
    x_tr, y_tr = torch.from_numpy(pats[tr]), torch.from_numpy(y[tr])
    lo, hi = np.log(opts.dose_range[0]), np.log(opts.dose_range[1])

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = np.random.default_rng([opts.seed, 11, step])
        idx = torch.from_numpy(g.integers(len(x_tr), size=opts.batch_size))
        dose = torch.from_numpy(np.exp(g.uniform(lo, hi, opts.batch_size))).float()
        tg = torch.Generator().manual_seed(int(g.integers(2**31)))
        x = torch.poisson(x_tr[idx].clamp_min(0) * dose[:, None, None], generator=tg)
        x = _blur(x, float(g.uniform(0, opts.blur_px)))
        op = SYMMETRY_OPS[int(g.integers(8))]
        t = y_tr[idx].clone()
        t[:, :2] = op_vectors(t[:, :2], op)
        t[:, 4:6] = op_vectors(t[:, 4:6], op)
        return apply_op(x, op).contiguous(), t

    t0 = time.perf_counter()
    history = train_loop(
        model, batch, gaussian_nll_loss, steps=opts.steps, lr=opts.learning_rate, device=device,
        checkpoint=opts.checkpoint or None, checkpoint_every=opts.checkpoint_every,
        desc="polar4d train",
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    model.cpu().eval()

    # baselines on one noisy draw of the training patterns at the validation dose
    truth = ts["true_disp_pm"].values
    noisy_tr = noisy(pats[tr], VALIDATION_DOSE, opts.seed + 1)
    pca = fit_pca_ridge(noisy_tr, truth[tr])
    com_a = fit_linear(com_mrad(noisy_tr, kpix), truth[tr, :2])
    mean_disp = truth[tr].mean(0)
    validation = {}
    if ho.any():
        noisy_ho = noisy(pats[ho], VALIDATION_DOSE, opts.seed + 2)
        pred, _, _ = predict(model, torch.from_numpy(noisy_ho), tta=True)
        validation.update(displacement_metrics(pred, truth[ho]))
        validation.update(
            displacement_metrics(np.broadcast_to(mean_disp, truth[ho].shape), truth[ho], "mean.")
        )
        validation.update(displacement_metrics(apply_pca_ridge(pca, noisy_ho), truth[ho], "pca."))
        validation.update(
            displacement_metrics(apply_linear(com_a, com_mrad(noisy_ho, kpix)), truth[ho], "com.")
        )
        validation["n_patterns"] = int(ho.sum())
    return xr.Dataset(
        {
            "weights": (
                "byte",
                state_bytes(model),
                {"units": "1", "format": "torch.save(state_dict) bytes"},
            ),
            "loss": ("step", np.asarray(history, np.float32), {"units": "1"}),
            "com_matrix": (("com_in", "inplane"), com_a, {"units": "pm/mrad"}),
            "mean_disp_pm": ("component", mean_disp, {"units": "pm"}),
            "pca_mean": ("feature", pca["mean"], {"units": "1"}),
            "pca_components": (("pca", "feature"), pca["components"], {"units": "1"}),
            "pca_coef": (("pca", "component"), pca["coef"], {"units": "pm"}),
            "pca_intercept": ("component", pca["intercept"], {"units": "pm"}),
        },  # fmt: skip
        coords={
            "step": ("step", np.arange(len(history)), {"units": "1"}),
            "component": ("component", ["dx", "dy", "dz"], {"units": "1"}),
            "inplane": ("inplane", ["dx", "dy"], {"units": "1"}),
            "com_in": ("com_in", ["com_row", "com_col", "one"], {"units": "1"}),
        },
        attrs={
            "architecture": {"name": "Polar4DNet", **model.config},
            "k_shape": list(pats.shape[-2:]),
            "n_parameters": n_parameters(model),
            "validation": validation,
            "validation_dose": VALIDATION_DOSE,
            "thermal_model": ts.attrs.get("thermal_model", "unknown"),
            "position_grid": int(ts.attrs.get("position_grid", 0)),
            "train_seconds": seconds,
            "device": str(device),
            "training": dataclasses.asdict(opts),
        },
    )
