"""Benchmark of the ltem technique: AD vs TIE (and PyLorentz's TIE when installed).

Acceptance cases of issue 3 (Bloch skyrmion, 256^2, 2.5 nm/px, 200 kV, Poisson noise, truth
simulated on a 2x finer grid), each reconstructed by our TIE and the AD reconstruction (one
torch thread, CPU), with accuracy vs truth, wall time and CPU time (``time.process_time``),
peak memory (``resource.getrusage``). Misaligned cases also report the Cramer-Rao floor of the
shifts with the phase known (``crb.*``, :func:`scopeflow.ltem.uncertainty.shift_crb`, from the
noise-free series of the same seed) and, for the cases of :data:`JOINT_CRB`, the joint bound
with the phase unknown (``crb_joint.*``, :func:`scopeflow.ltem.crb.joint_shift_crb`: Schur
complement of the phase block by CG). Writes ``bench/results/ltem.json``.

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
from scopeflow.ltem.crb import joint_shift_crb, model_at_truth
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
#: misaligned cases that also get the joint (phase-unknown) shift bound: one per defocus/dose
#: (the other seeds share its physics); ~1-3 min each on one thread
JOINT_CRB = {
    "df2mm_dose100_misaligned",
    "df1mm_dose100_misaligned",
    "df200um_dose100_misaligned",
    "df1mm_dose10_misaligned",
}
NOTES = {
    "df200um_dose100": (
        "the error is the noise of the lowest Fourier modes of the phase (q < 0.02 cycles/px: "
        "0.030 for AD and TIE alike; 0.0004 AD / 0.003 TIE without noise); their information "
        "grows as df^2 q^4, and the weak-phase Cramer-Rao bound of an unbiased estimate of "
        "those modes is 0.0225 rel. L2 (expected; the few modes make the realised value vary "
        "by seed): at 200 um the 0.03 acceptance sits at that floor"
    ),
    "shifts": (
        "crb.* is the Cramer-Rao bound with the phase (and all else) known; crb_joint.* the "
        "bound with the phase map unknown too (Fisher information by forward/reverse autograd "
        "on the forward model at the truth, Schur complement of the phase block by "
        "preconditioned CG; gains, defocus offsets and rotations do not couple with the shifts "
        "of the centred skyrmion, < 5 % at 16^2 (test), so only the phase is eliminated; a CG "
        "stopped at 200 iterations gives a lower bound). Joint sigma per component: 2 mm / 100 "
        "e/px >= 0.011 px, 1 mm / 100 e/px 0.020, 200 um / 100 e/px 0.092 (known-phase 0.090), "
        "1 mm / 10 e/px 0.065 (known-phase 0.047; 300 CG iterations, residual 1e-4: 0.0653). "
        "At 200 um an efficient unbiased estimator exceeds 0.1 px on one of the two "
        "independent shift components about half the time: <= 0.1 px is not reachable "
        "reliably with 3 images there. At 1 mm / 10 e/px it is (P ~ 0.76 at the bound), but "
        "the AD shift error is 1.2-4.6 x the joint bound (rms, seeds 7/17/27): the coupled "
        "shift/phase direction converges slowly, and at the default tol the fit stops early "
        "(seed 17: 0.25 px at tol 1e-4, 0.082 px at tol 1e-6 after 384 iterations, over the "
        "10 s budget)"
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
        if name in JOINT_CRB:
            t1 = time.perf_counter()
            model = model_at_truth(
                clean.assign_attrs(dose=sim["dose"]), {"phase", "shift", "rotation"}
            )
            jc = joint_shift_crb(model, cg_tol=1e-3, cg_max_iter=200, nuisance=())
            out["crb_joint.shift_sigma_max_px"] = float(jc["joint"].max())
            # rms over all images and axes (the fixed reference counts as 0), like crb.*
            out["crb_joint.shift_sigma_rms_px"] = float(np.sqrt(np.mean(jc["joint"] ** 2)))
            out["crb_joint.phase_known_sigma_max_px"] = float(jc["all_known"].max())
            out["crb_joint.cg_iterations"] = [int(i) for i in jc["cg_iterations"]]
            out["crb_joint.seconds"] = time.perf_counter() - t1
            out["shift_error_over_crb_joint.rms"] = (
                out["ad.shift_error_rms_px"] / out["crb_joint.shift_sigma_rms_px"]
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
