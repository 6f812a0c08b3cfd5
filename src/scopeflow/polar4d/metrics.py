"""Displacement-error metrics shared by train (validation), analyze and the benchmark."""

from __future__ import annotations

import numpy as np

__all__ = ["displacement_metrics", "polarization_uc_cm2"]

#: Elementary charge [C].
E_CHARGE = 1.602176634e-19


def polarization_uc_cm2(disp_pm: np.ndarray, lattice_A: float, born_charge: float) -> np.ndarray:
    """Polarization from the Ti off-centring, ``P = e Z* u / V`` [µC/cm²].

    With the cubic cell volume ``V = a^3``. For BaSrTiO3 (a = 3.947 Å) and Z*_Ti = 7.2 (the Ti
    Born charge of cubic BaTiO3/SrTiO3, Ghosez et al., PRB 58, 6224 (1998),
    doi:10.1103/PhysRevB.58.6224), 1 pm gives 1.88 µC/cm². The O cage's counter-displacement is
    not added: the network reports the Ti position relative to the A-site frame.
    """
    vol_m3 = (lattice_A * 1e-10) ** 3
    p_c_m2 = E_CHARGE * born_charge * np.asarray(disp_pm) * 1e-12 / vol_m3
    return p_c_m2 * 100.0  # C/m^2 -> µC/cm^2


def displacement_metrics(
    pred: np.ndarray, true: np.ndarray, prefix: str = "", sign_threshold_pm: float = 10.0
) -> dict:
    """RMSEs per component, in-plane RMSE and dz sign accuracy.

    Parameters
    ----------
    pred, true : (n, 3) or (n, 2) float [pm]
        (dx, dy[, dz]); NaN rows are ignored.
    prefix : str
        Key prefix, e.g. ``"com."``.

    Returns
    -------
    dict
        ``{prefix}inplane.rmse_pm`` (rms over dx and dy), ``{prefix}dx.rmse_pm``, ...,
        ``{prefix}dz.rmse_pm`` and ``{prefix}dz.sign_accuracy`` (fraction of |dz| >=
        ``sign_threshold_pm`` with the right sign) when dz is present.
    """
    pred, true = np.asarray(pred, float), np.asarray(true, float)[:, : pred.shape[1]]
    ok = np.all(np.isfinite(pred), axis=1) & np.all(np.isfinite(true), axis=1)
    err = pred[ok] - true[ok]
    out = {f"{prefix}inplane.rmse_pm": float(np.sqrt(np.mean(err[:, :2] ** 2)))}
    for i, name in enumerate(("dx", "dy", "dz")[: pred.shape[1]]):
        out[f"{prefix}{name}.rmse_pm"] = float(np.sqrt(np.mean(err[:, i] ** 2)))
    if pred.shape[1] > 2:
        big = np.abs(true[ok, 2]) >= sign_threshold_pm
        acc = np.mean(np.sign(pred[ok, 2][big]) == np.sign(true[ok, 2][big])) if big.any() else 0.0
        out[f"{prefix}dz.sign_accuracy"] = float(acc)
        out[f"{prefix}dz.n_scored"] = int(big.sum())
    return out
