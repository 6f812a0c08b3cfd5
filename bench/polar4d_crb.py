"""polar4d physics limit: the Cramér-Rao bound of (dx, dy, dz) from one position-averaged pattern.

For Poisson counts with expected fractions ``p_i(theta)`` of ``N`` electrons the Fisher information
is ``I = N sum_i (dp_i/dtheta)(dp_i/dtheta)^T / p_i`` and no unbiased estimator beats
``sqrt(diag(I^-1))`` (Van Aert, den Dekker, Van Dyck, van den Bos, J. Struct. Biol. 138, 21 (2002),
doi:10.1016/S1047-8477(02)00016-3, for electron microscopy). ``theta`` = (dx, dy, dz [pm],
tilt x, y [mrad], defocus [Å]); the derivatives are central differences of abTEM patterns of the
bench's PACBED tiers (BaSrTiO3 2x2x2 super-cell, 5 x 5 probes per cell, 300 keV, 10 mrad,
detector to 120 mrad) at one working point. Known: the A-site configuration and the thickness,
so the bound is local and optimistic: a network that must also infer them can only do worse.

Also measured: how a re-draw of the A sites (same theta) projects onto the derivatives, i.e. which
displacement the disorder imitates to first order (Fisher-weighted least squares), and from which
scattering angles the information comes.

Usage: ``python bench/polar4d_crb.py [--jobs 2] [--quick]``; merges ``cramer_rao`` into
``bench/results/polar4d.json``. ~6 min on 2 cores (52 abTEM runs; Debye-Waller ~22 CPU-s each).
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from polar4d import _merge  # noqa: E402

from scopeflow.polar4d.cbed import LATTICE_A, cbed_series, k_pixel_mrad  # noqa: E402
from scopeflow.polar4d.options import OpticsOptions  # noqa: E402
from scopeflow.polar4d.simulate import bin_patterns, cell_spec, pacbed  # noqa: E402

#: working point (dx, dy, dz [pm], tilt x, y [mrad], defocus [Å]) and central-difference steps
THETA0 = np.array([6.0, -4.0, 10.0, 0.3, -0.2, 20.0])
PARAMS = ("dx_pm", "dy_pm", "dz_pm", "tilt_x_mrad", "tilt_y_mrad", "defocus_A")
STEPS = np.array([2.0, 2.0, 2.0, 0.1, 0.1, 10.0])
CELLS = (20, 30, 40, 50)  # 7.9 - 19.7 nm, the bench tiers' thicknesses
SEEDS = (7, 8)  # two A-site draws
DOSE = 25e4  # the acceptance point's 1e4 e/probe x 25 probes per position-averaged pattern
BANDS_MRAD = ((0, 20), (20, 60), (60, 200))
MATERIAL = OpticsOptions().material  # BaSrTiO3, as the bench tiers


def _pattern(args) -> np.ndarray:
    thermal, seed, theta = args
    spec = cell_spec(OpticsOptions(thermal_model=thermal))
    g = 5
    grid = np.stack(np.meshgrid(np.arange(g) / g, np.arange(g) / g, indexing="ij"), -1)
    p = cbed_series(
        spec, theta[:3], CELLS, grid.reshape(-1, 2) + 0.13, thermal=thermal,
        tilt_mrad=theta[3:5], defocus_A=theta[5], seed=seed,
    )  # fmt: skip
    return pacbed(p)[:, 0].astype(np.float64)  # (thickness, k, k)


def _named(v: np.ndarray, digits: int) -> dict:
    """(dx, dy, dz) of a parameter vector, rounded."""
    return {k: round(float(x), digits) for k, x in zip(("dx", "dy", "dz"), v[:3], strict=False)}


def _crb(p: np.ndarray, jac: np.ndarray, mask=None) -> np.ndarray:
    """sqrt(diag(I^-1)) of all 6 parameters from one pattern ``p (k, k)``, ``jac (k, k, 6)``."""
    m = np.ones(p.shape, bool) if mask is None else mask
    q = np.clip(p[m], 1e-12, None)
    j = jac[m]
    info = DOSE * (j / q[:, None]).T @ j
    return np.sqrt(np.diag(np.linalg.pinv(info)))


def analyse(pats: dict, binf: int, kpix: float) -> dict:
    """Bounds per seed and thickness, by angular band, and the A-site imitation."""
    b = {s: bin_patterns(pats[s]["p0"], binf) for s in SEEDS}
    jac = {s: np.moveaxis(bin_patterns(np.moveaxis(pats[s]["jac"], -1, 0), binf), 0, -1)
           for s in SEEDS}  # fmt: skip
    k = b[SEEDS[0]].shape[-1]
    rr = np.hypot(*np.meshgrid(np.arange(k) - k // 2, np.arange(k) - k // 2, indexing="ij"))
    rr = rr * kpix * binf
    out: dict = {"per_thickness": {}}
    inplane, dz = [], []
    for it, c in enumerate(CELLS):
        row: dict = {}
        for s in SEEDS:
            crb = _crb(b[s][it], jac[s][it])
            inplane += [crb[0] ** 2, crb[1] ** 2]
            dz.append(crb[2] ** 2)
            bands = {}
            for lo, hi in BANDS_MRAD:
                band = _crb(b[s][it], jac[s][it], (rr >= lo) & (rr < hi))
                bands[f"{lo}-{hi}_mrad"] = np.round(band[:3], 2).tolist()
            row[f"seed{s}"] = {"crb_pm": _named(crb, 3), "crb_pm_by_band": bands}
        # first-order imitation of an A-site re-draw: Fisher-weighted least squares of the
        # pattern change on the derivatives of the first draw
        s0, s1 = SEEDS
        w = 1 / np.sqrt(np.clip(b[s0][it], 1e-12, None)).ravel()
        d = (b[s1][it] - b[s0][it]).ravel() * w
        jw = jac[s0][it].reshape(-1, 6) * w[:, None]
        coef, *_ = np.linalg.lstsq(jw, d, rcond=None)
        r = d - jw @ coef
        change = np.linalg.norm(b[s1][it] - b[s0][it]) / np.linalg.norm(b[s0][it])
        row["a_site_redraw"] = {
            "imitates_pm": _named(coef, 2),
            "explained_fraction": round(float(1 - r @ r / (d @ d)), 3),
            "relative_change": round(float(change), 4),
        }
        out["per_thickness"][f"{0.1 * c * LATTICE_A[MATERIAL]:.1f}nm"] = row
    out["inplane.crb_rms_pm"] = round(float(np.sqrt(np.mean(inplane))), 3)
    out["dz.crb_rms_pm"] = round(float(np.sqrt(np.mean(dz))), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="static lattice only (~1.5 min)")
    a = ap.parse_args()
    thermals = ("static",) if a.quick else ("static", "debye_waller")
    tasks = []
    for thermal in thermals:
        for s in SEEDS:
            tasks.append((thermal, s, THETA0))
            for i in range(6):
                e = np.zeros(6)
                e[i] = STEPS[i]
                tasks += [(thermal, s, THETA0 + e), (thermal, s, THETA0 - e)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.jobs) as ex:
        res = list(ex.map(_pattern, tasks))
    seconds = time.perf_counter() - t0
    kpix = k_pixel_mrad(cell_spec(OpticsOptions()))
    out: dict = {
        "method": "Fisher information of Poisson counts, central differences of abTEM PACBED "
        "(5 x 5 probes per cell), nuisances tilt (2) and defocus; A sites and thickness known",
        "working_point": dict(zip(PARAMS, THETA0.tolist(), strict=True)),
        "dose_per_pattern": DOSE,
        "simulate_seconds": round(seconds, 1),
    }
    it = iter(res)
    for thermal in thermals:
        pats = {}
        for s in SEEDS:
            p0 = next(it)
            jac = []
            for i in range(6):
                plus, minus = next(it), next(it)
                jac.append((plus - minus) / (2 * STEPS[i]))
            pats[s] = {"p0": p0, "jac": np.stack(jac, -1)}
        out[thermal] = {f"bin{f}": analyse(pats, f, kpix) for f in (1, 3)}
    print(_merge({"cramer_rao": out})["cramer_rao"])


if __name__ == "__main__":
    main()
