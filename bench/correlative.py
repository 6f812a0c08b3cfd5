"""Correlative benchmark: polar4d x fpxm on the shared ``stripe_domains`` specimen.

Runs both chains in one process (fpxm simulate -> reconstruct -> analyze, with and without a
±E pair; polar4d simulate -> infer with the committed CPU-tier weights), then the comparison of
the two and of each against the specimen truth seen through the other's grid, so that the
technique-vs-technique disagreement can be split into each technique's own error.

    python bench/correlative.py [--quick]

Writes ``bench/results/correlative.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from scopeflow.correlative.compare import compare
from scopeflow.correlative.options import CompareOptions
from scopeflow.fpxm.analyze import analyze
from scopeflow.fpxm.options import AnalyzeOptions, ReconstructOptions
from scopeflow.fpxm.options import SimulateOptions as FpxmSim
from scopeflow.fpxm.reconstruct import reconstruct
from scopeflow.fpxm.simulate import simulate
from scopeflow.io import read_store
from scopeflow.polar4d.infer import infer_scan
from scopeflow.polar4d.metrics import polarization_uc_cm2
from scopeflow.polar4d.options import InferOptions
from scopeflow.polar4d.options import SimulateOptions as Polar4DSim
from scopeflow.polar4d.simulate import simulate_scan

ROOT = Path(__file__).resolve().parents[1]
SPECIMEN = "stripe_domains"


def _truth_pmap(scan: xr.Dataset) -> xr.Dataset:
    """The specimen truth at the polar4d probe positions, as a pmap."""
    pol = polarization_uc_cm2(scan["true_disp_pm"].values, float(scan.attrs["lattice_A"]), 7.2)
    return xr.Dataset(
        {"polarization": (("scan_row", "scan_col", "component"), pol, {"units": "µC/cm²"})},
        coords={k: scan[k] for k in ("scan_row", "scan_col")}
        | {"component": ("component", ["dx", "dy", "dz"])},
    )


def _truth_analysis(stack: xr.Dataset, like: xr.Dataset) -> xr.Dataset:
    """The fpxm truth (zero-field P, exact sign) in the shape of an analysis store."""
    p = stack["true_polarization"].isel(efield=[0])
    sign = np.sign(p.values[0, 2]).astype(np.int8)
    return xr.Dataset(
        {
            "polarization": p.assign_attrs(units="C/m^2"),
            "polarization_sign": (("obj_row", "obj_col"), sign),
        },
        coords={"component": ("component", ["x", "y", "z"])},
    ).assign_coords({k: like[k] for k in ("obj_row", "obj_col")})


def _fpxm(field_mv_per_m: float) -> tuple[xr.Dataset, xr.Dataset, float]:
    sim = FpxmSim(
        structure=SPECIMEN, n_object=128, shift_grid=5, needle=False, nanoregion=False,
        interior_margin_px=4, field_mv_per_m=field_mv_per_m, seed=2,
    )  # fmt: skip
    t0 = time.perf_counter()
    stack = simulate([], sim)
    field = reconstruct([stack], ReconstructOptions(iterations=300, device="cpu"))
    with np.errstate(divide="ignore", invalid="ignore"):  # truth |P| = 0 on 180° wall nodes
        ana = analyze([stack, field], AnalyzeOptions(ptylab=False))
    return stack, ana, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 x 8 probe scan (120 nm step)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    shape, step = ((2, 8), 120.0) if args.quick else ((2, 16), 60.0)
    opts = CompareOptions(specimen=SPECIMEN)
    out: dict = {"specimen": SPECIMEN, "scan_shape": list(shape), "scan_step_nm": step}

    t0 = time.perf_counter()
    scan = simulate_scan([], Polar4DSim(specimen=SPECIMEN, scan_shape=shape, scan_step_nm=step))
    out["polar4d.simulate_seconds"] = time.perf_counter() - t0
    model = read_store(ROOT / "resources" / "polar4d" / "model_static.zarr", "polar4d.model")
    pmap = infer_scan([scan, model], InferOptions(device="cpu"))
    err = pmap["disp_pm"].values - scan["true_disp_pm"].values
    out["polar4d.disp_rmse_pm"] = dict(
        zip(("dx", "dy", "dz"), np.sqrt(np.mean(err**2, (0, 1))).tolist(), strict=True)
    )
    out["polar4d.material"] = scan.attrs["material"]
    truth_pmap = _truth_pmap(scan)

    for label, efield in (("zero_field", 0.0), ("pm_1MV_per_m", 1.0)):
        stack, ana, secs = _fpxm(efield)
        res = {"fpxm.seconds": secs, **{f"fpxm.{k}": v for k, v in ana.attrs["metrics"].items()
                                         if k.startswith("polarization")}}  # fmt: skip
        t0 = time.perf_counter()
        res["polar4d_vs_fpxm"] = compare([pmap, ana], opts).attrs["metrics"]
        res["compare_seconds"] = time.perf_counter() - t0
        res["truth_vs_fpxm"] = compare([truth_pmap, ana], opts).attrs["metrics"]
        res["polar4d_vs_truth"] = compare([pmap, _truth_analysis(stack, ana)], opts).attrs[
            "metrics"
        ]
        out[label] = res
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["note"] = "CPU, 1 torch thread, machine shared with other jobs (timings under load)"
    path = ROOT / "bench" / "results" / "correlative.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
