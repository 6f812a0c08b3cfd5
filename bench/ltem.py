"""Benchmark of the ltem technique: AD vs TIE (and PyLorentz's TIE when installed).

Acceptance cases of issue 3 (Bloch skyrmion, 256^2, 2.5 nm/px, 200 kV, Poisson noise, truth
simulated on a 2x finer grid), each reconstructed by our TIE and the AD reconstruction (one
torch thread, CPU), with accuracy vs truth, wall time and CPU time (``time.process_time``),
peak memory (``resource.getrusage``). Misaligned cases also report the Cramer-Rao floor of the
shifts with the phase known (``crb.*``, :func:`scopeflow.ltem.uncertainty.shift_crb`, from the
noise-free series of the same seed). Writes ``bench/results/ltem.json``.

Usage: ``python bench/ltem.py [--quick]`` (``--quick``: 128^2 x 5 nm, two cases).
The machine may be shared: wall times are then longer than CPU times; both are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

from scopeflow.ltem.analyze import analyze
from scopeflow.ltem.options import AdOptions, AnalyzeOptions, ReconstructOptions, SimulateOptions
from scopeflow.ltem.reconstruct import reconstruct
from scopeflow.ltem.simulate import simulate_series
from scopeflow.ltem.tie import tie_phase
from scopeflow.ltem.uncertainty import shift_crb
from scopeflow.optics.metrics import rel_l2_meanfree, scale_factor
from scopeflow.optics.wavelength import electron_wavelength

PERTURB = {"shift_px": 1.0, "rotation_deg": 0.5, "defocus_error_rel": 0.02}
CASES = [
    ("df2mm_dose100", {"defocus_nm": (-2e6, 0.0, 2e6), "dose": 100.0, "seed": 0}),
    ("df1mm_dose100", {"defocus_nm": (-1e6, 0.0, 1e6), "dose": 100.0, "seed": 1}),
    ("df200um_dose100", {"defocus_nm": (-2e5, 0.0, 2e5), "dose": 100.0, "seed": 2}),
    ("df1mm_dose10", {"defocus_nm": (-1e6, 0.0, 1e6), "dose": 10.0, "seed": 3}),
    (
        "df2mm_dose100_misaligned",
        {"defocus_nm": (-2e6, 0.0, 2e6), "dose": 100.0, "seed": 4, **PERTURB},
    ),
    (
        "df1mm_dose100_misaligned",
        {"defocus_nm": (-1e6, 0.0, 1e6), "dose": 100.0, "seed": 5, **PERTURB},
    ),
    (
        "df200um_dose100_misaligned",
        {"defocus_nm": (-2e5, 0.0, 2e5), "dose": 100.0, "seed": 6, **PERTURB},
    ),
    (
        "df1mm_dose10_misaligned",
        {"defocus_nm": (-1e6, 0.0, 1e6), "dose": 10.0, "seed": 7, **PERTURB},
    ),
    # the same case for two more noise (and misalignment) seeds: robustness
    *[
        (
            f"df1mm_dose10_misaligned_seed{seed}",
            {"defocus_nm": (-1e6, 0.0, 1e6), "dose": 10.0, "seed": seed, **PERTURB},
        )
        for seed in (17, 27)
    ],
    # 5-image series (allowed by the issue: 3-5 images) where 3 images leave the shifts weak
    (
        "df200um_dose100_misaligned_5images",
        {"defocus_nm": (-2e5, -1e5, 0.0, 1e5, 2e5), "dose": 100.0, "seed": 6, **PERTURB},
    ),
    (
        "df1mm_dose10_misaligned_5images",
        {"defocus_nm": (-1e6, -5e5, 0.0, 5e5, 1e6), "dose": 10.0, "seed": 7, **PERTURB},
    ),
    ("df2mm_5images", {"defocus_nm": (-2e6, -1e6, 0.0, 1e6, 2e6), "dose": 100.0, "seed": 8}),
]
NOTES = {
    "df200um_dose100": (
        "the error is the noise of the lowest Fourier modes of the phase (q < 0.02 cycles/px: "
        "0.030 for AD and TIE alike; 0.0004 AD / 0.003 TIE without noise); their information "
        "grows as df^2 q^4, and the weak-phase Cramer-Rao bound of an unbiased estimate of "
        "those modes is 0.0225 rel. L2 (expected; the few modes make the realised value vary "
        "by seed): at 200 um the 0.03 acceptance sits at that floor"
    ),
    "shifts": (
        "crb.* is the Cramer-Rao bound with the phase (and all else) known: a floor. A "
        "shift-only fit with the true phase reaches it (200 um, 100 e/px: max error 0.097 "
        "and 0.145 px vs crb 0.090, seeds 2 and 6; 1 mm, 10 e/px: 0.049 vs 0.047), so the "
        "error measure (same frame: reference fixed, non-reference shifts zero-mean, in truth "
        "and fit) and the bound agree; with the phase unknown the same fit errs by 0.43-0.73 "
        "px: the relative shift is coupled to the phase, and the joint bound is well above "
        "the floor (not computed). The shift information grows as df^2 dose: 5 evenly "
        "spaced images add inner images at df/2 whose floor alone is 0.19 px (200 um) and "
        "0.12 px (1 mm, 10 e/px), so they do not meet 0.1 px either"
    ),
}
ACCEPT = {
    "df2mm_dose100": 0.02,
    "df1mm_dose100": 0.03,
    "df200um_dose100": 0.03,
    "df1mm_dose10": 0.06,
}


def _pylorentz_tie(ds):
    """PyLorentz's TIE on the same data, or None when PyLorentz is not importable."""
    try:
        import PyLorentz  # noqa: F401  (not on PyPI: optional)
    except ImportError:
        return None
    return "PyLorentz importable but its TIE API is not wired here"


def run_case(name: str, sim: dict, grid: dict) -> dict:
    ds = simulate_series([], SimulateOptions(**grid, **sim))
    truth = ds["true_phase_m"].values + ds["true_phase_e"].values
    lam = electron_wavelength(float(ds.attrs["energy_ev"]))
    t0, c0 = time.perf_counter(), time.process_time()
    tie = tie_phase(ds["image"].values, ds["defocus"].values, float(ds.attrs["pixel_size_nm"]), lam)
    tie_s, tie_cpu = time.perf_counter() - t0, time.process_time() - c0
    rec = reconstruct([ds], ReconstructOptions(device="cpu", ad=AdOptions(uncertainty="none")))
    m = analyze([rec], AnalyzeOptions()).attrs["metrics"]
    out = {k: v for k, v in m.items() if isinstance(v, (int, float, str))}
    out.update(
        {
            "tie.seconds": tie_s,
            "tie.cpu_seconds": tie_cpu,
            "tie_check.phase_rel_l2": rel_l2_meanfree(tie, truth),
            "tie_check.phase_scale": scale_factor(tie, truth),
            "n_images": int(ds.sizes["defocus"]),
            "time_ratio.ad_over_tie": out["ad.seconds"] / max(tie_s, 1e-9),
            "accuracy_ratio.tie_over_ad": out["tie.phase_rel_l2"] / out["ad.phase_rel_l2"],
        }
    )
    if "_misaligned" in name:
        # Cramer-Rao floor of the shifts (phase and all else known) from the noise-free series
        clean = simulate_series([], SimulateOptions(**grid, **{**sim, "dose": None}))
        mean = clean["image"].values * sim["dose"]
        ref = int(abs(clean["defocus"].values).argmin())
        crb = shift_crb(mean, ref)
        out["crb.shift_sigma_max_px"] = float(crb.max())
        out["crb.shift_sigma_rms_px"] = float(np.sqrt(np.mean(crb**2)))  # as the error rms
        out["shift_error_over_crb.rms"] = (
            out["ad.shift_error_rms_px"] / out["crb.shift_sigma_rms_px"]
        )
    plz = _pylorentz_tie(ds)
    out["pylorentz.tie"] = plz if plz is not None else "skipped: PyLorentz not installed"
    base = name.split("_misaligned")[0]
    if base in ACCEPT:
        out["accept.phase_rel_l2_max"] = ACCEPT[base]
        out["accept.pass_phase"] = bool(out["ad.phase_rel_l2"] <= ACCEPT[base])
        out["accept.pass_scale"] = bool(0.98 <= out["ad.phase_scale"] <= 1.02)
        if "_misaligned" in name:
            out["accept.pass_shift"] = bool(out["ad.shift_error_max_px"] <= 0.1)
    print(
        f"{name}: AD {out['ad.phase_rel_l2']:.4f} (scale {out['ad.phase_scale']:.4f}), "
        f"TIE {out['tie.phase_rel_l2']:.4f}, AD {out['ad.seconds']:.1f} s wall / "
        f"{out['ad.cpu_seconds']:.1f} s CPU, {out['ad.iterations']} it, "
        f"shift err {out.get('ad.shift_error_max_px', float('nan')):.3f} px, "
        f"{out['ad.convergence']}",
        flush=True,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="128^2 x 5 nm, two cases")
    ap.add_argument("--cases", nargs="*", help="subset of case names")
    args = ap.parse_args()
    torch.set_num_threads(1)
    grid = (
        {"size": 128, "pixel_size_nm": 5.0} if args.quick else {"size": 256, "pixel_size_nm": 2.5}
    )
    cases = CASES[:1] + CASES[4:5] if args.quick else CASES
    if args.cases:
        cases = [c for c in CASES if c[0] in args.cases]
    results = {name: run_case(name, sim, grid) for name, sim in cases}
    report = {
        "technique": "ltem",
        "grid": grid,
        "threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "note": "shared 2-core machine under load from other jobs: wall > CPU time",
        "notes": NOTES,
        "load_average_1_5_15min_at_end": list(os.getloadavg()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cases": results,
        "all_accepted": bool(
            all(v for r in results.values() for k, v in r.items() if k.startswith("accept.pass"))
        ),
    }
    out = Path(__file__).parent / "results" / "ltem.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=float))
    print(f"wrote {out}; peak RSS {report['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
