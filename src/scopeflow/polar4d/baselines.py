"""Baselines fitted on the same training set: predict-the-mean, PCA + ridge, calibrated COM.

COM/DPC: the centre of mass of the diffraction pattern measures the in-plane momentum transfer
(Müller et al., Nat. Commun. 5, 5653 (2014), doi:10.1038/ncomms6653); for a displaced cation
column it is, to first order, linear in the displacement, so a linear calibration
``d = A @ (com_x, com_y, 1)`` fitted on simulated patterns is the fair COM baseline.
"""

from __future__ import annotations

import numpy as np

__all__ = ["com_mrad", "fit_linear", "apply_linear", "fit_pca_ridge", "apply_pca_ridge"]


def com_mrad(
    patterns: np.ndarray, k_pixel_mrad: float, center_px: tuple[float, float] | None = None
) -> np.ndarray:
    """Centre of mass of ``(n, k_row, k_col)`` patterns about the zero-angle pixel.

    ``center_px`` is the zero-angle (direct-beam) position (row, col) [px]; ``None`` means
    ``(k_row // 2, k_col // 2)`` (simulated patterns).

    Returns
    -------
    (n, 2) float64
        (row, col) [mrad].
    """
    p = np.asarray(patterns, np.float64)
    kr, kc = p.shape[-2:]
    r0, c0 = center_px if center_px is not None else (kr // 2, kc // 2)
    cr = (np.arange(kr) - r0) * k_pixel_mrad
    cc = (np.arange(kc) - c0) * k_pixel_mrad
    tot = p.sum(axis=(-2, -1)).clip(1e-12)
    return np.stack([(p.sum(-1) * cr).sum(-1) / tot, (p.sum(-2) * cc).sum(-1) / tot], axis=-1)


def fit_linear(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares ``y ~ [x, 1] @ A``; returns ``A (x_dim + 1, y_dim)``."""
    xa = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    return np.linalg.lstsq(xa, y, rcond=None)[0]


def apply_linear(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Apply :func:`fit_linear`'s matrix."""
    return np.concatenate([x, np.ones((len(x), 1))], axis=1) @ a


def _flat_features(patterns: np.ndarray) -> np.ndarray:
    p = np.asarray(patterns, np.float64).clip(0)
    p = p / p.sum(axis=(-2, -1), keepdims=True).clip(1e-12)
    return np.sqrt(p).reshape(len(p), -1)


def fit_pca_ridge(patterns: np.ndarray, y: np.ndarray, n_components: int = 40, alpha=1e-3):
    """PCA of sqrt-normalised patterns + ridge regression (sklearn).

    Returns
    -------
    dict of arrays
        ``mean (f,)``, ``components (c, f)``, ``coef (c, t)``, ``intercept (t,)``.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge

    f = _flat_features(patterns)
    pca = PCA(n_components=min(n_components, len(f) - 1, f.shape[1]), random_state=0).fit(f)
    z = pca.transform(f)
    ridge = Ridge(alpha=alpha).fit(z / z.std(0).clip(1e-12), y)
    return {
        "mean": pca.mean_.astype(np.float32),
        "components": (pca.components_ / z.std(0).clip(1e-12)[:, None]).astype(np.float32),
        "coef": ridge.coef_.T.astype(np.float32),
        "intercept": np.asarray(ridge.intercept_, np.float32),
    }


def apply_pca_ridge(params: dict, patterns: np.ndarray) -> np.ndarray:
    """Predict with :func:`fit_pca_ridge` parameters; ``(n, t)``."""
    z = (_flat_features(patterns) - params["mean"]) @ params["components"].T
    return z @ params["coef"] + params["intercept"]
