"""polar4d benchmark: accuracy vs truth and baselines per thermal tier, thickness and dose,
the cross-simulator check, inference throughput and streaming memory.

Usage: ``python bench/polar4d.py [--quick] [--cache DIR]
[--section train|curve|curve_large|long|dz_static|cross|speed|memory|all]``. Sections merge into
``bench/results/polar4d.json`` so they can run separately (simulating the training sets is the
expensive part: chunks are cached in ``--cache`` and reused).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import xarray as xr  # noqa: E402

from scopeflow.polar4d.baselines import apply_linear, apply_pca_ridge, com_mrad  # noqa: E402
from scopeflow.polar4d.infer import load_model  # noqa: E402
from scopeflow.polar4d.metrics import displacement_metrics  # noqa: E402
from scopeflow.polar4d.model import SYMMETRY_OPS, apply_op, predict  # noqa: E402
from scopeflow.polar4d.options import OpticsOptions, TrainOptions, TrainSetOptions  # noqa: E402
from scopeflow.polar4d.simulate import simulate_trainset  # noqa: E402
from scopeflow.polar4d.train import noisy, split_structures, train_model  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "polar4d.json"
#: tier -> (structures, seed, thermal model, position grid per cell edge; 0 = single probes)
TIERS = {
    "static": (160, 11, "static", 0),
    "debye_waller": (48, 12, "debye_waller", 0),
    "debye_waller_pacbed": (88, 21, "debye_waller", 5),
    "static_pacbed": (48, 23, "static", 5),
}
#: Acceptance dose 1e4 e/probe; a position-averaged pattern sums the 5 x 5 probes of one cell
ACCEPT_DOSE = {0: 1e4, 5: 25e4}


def _merge(update: dict) -> dict:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    old.update(update)
    RESULTS.write_text(json.dumps(old, indent=2, default=float))
    return old


def trainset_opts(tier: str, quick: bool, cache: str) -> TrainSetOptions:
    n, seed, thermal, grid = TIERS[tier]
    return TrainSetOptions(
        optics=OpticsOptions(thermal_model=thermal),
        n_structures=12 if quick else n,
        thickness_cells=(20, 30, 40, 50),  # 7.9 - 19.7 nm of BaSrTiO3
        position_grid=grid,
        chunk_structures=8 if tier == "static" else 4,
        cache_dir=cache,
        seed=seed,
    )


def train_opts(quick: bool, tier: str = "static") -> TrainOptions:
    steps = 2000 if TIERS[tier][3] else 1200
    return TrainOptions(steps=60 if quick else steps, batch_size=64, width=8, device="cpu")


def heldout(ts, opts: TrainOptions):
    _, ho = split_structures(ts["structure"].values, opts.holdout_fraction, opts.seed)
    return ho


def evaluate(model_store, ts, ho, doses=(1e3, 1e4, 1e5), detail=1e4) -> dict:
    """Per dose and (at ``detail``) per thickness metrics of the network and the baselines.

    Doses are electrons per network input: per probe for single-probe patterns, per unit cell
    (all its probes) for position-averaged ones.
    """
    model = load_model(model_store)
    kpix = float(ts.attrs["k_pixel_mrad"])
    pats = ts["patterns"].values[ho]
    truth = ts["true_disp_pm"].values[ho]
    thick = ts["thickness_nm"].values[ho]
    pca = {k: model_store[f"pca_{k}"].values for k in ("mean", "components", "coef", "intercept")}
    out: dict = {}
    for dose in doses:
        x = noisy(pats, dose, 99)
        pred, sig, _ = predict(model, torch.from_numpy(x), tta=True)
        key = f"dose_{dose:.2g}"
        out[key] = displacement_metrics(pred, truth)
        mean = np.broadcast_to(model_store["mean_disp_pm"].values, truth.shape)
        out[key].update(displacement_metrics(mean, truth, "mean."))
        out[key].update(displacement_metrics(apply_pca_ridge(pca, x), truth, "pca."))
        com = apply_linear(model_store["com_matrix"].values, com_mrad(x, kpix))
        out[key].update(displacement_metrics(com, truth, "com."))
        out[key]["uncertainty.z_rms"] = float(np.sqrt(np.mean(((pred - truth) / sig) ** 2)))
        if dose == detail:
            plain, _, _ = predict(model, torch.from_numpy(x), tta=False)
            out[f"{key}_no_tta"] = displacement_metrics(plain, truth)
            for t in np.unique(thick):
                m = thick == t
                out[f"thickness_{t:.1f}nm"] = displacement_metrics(pred[m], truth[m])
                out[f"thickness_{t:.1f}nm"].update(displacement_metrics(com[m], truth[m], "com."))
    out["n_patterns"] = int(ho.sum())
    return out


def section_train(quick: bool, cache: str, tiers) -> dict:
    res = {}
    for tier in tiers:
        t0 = time.perf_counter()
        ts = simulate_trainset([], trainset_opts(tier, quick, cache))
        sim_s = time.perf_counter() - t0
        opts = train_opts(quick, tier)
        grid = TIERS[tier][3]
        path = Path(cache) / f"model_{tier}{'_quick' if quick else ''}.zarr"
        if path.exists():  # e.g. written by `python -m scopeflow polar4d train` with train_opts
            ms = xr.open_zarr(path).load()
        else:
            torch.manual_seed(0)
            t_cpu = time.process_time()
            ms = train_model([ts], opts)
            ms.attrs["train_cpu_seconds"] = time.process_time() - t_cpu
            ms.to_zarr(path, mode="w")
        accept = ACCEPT_DOSE[grid]
        doses = (1e3, 1e4, 1e5) if accept == 1e4 else (1e4, accept, 1e6)
        res[tier] = {
            "input": f"position-averaged {grid}x{grid} probes per cell (PACBED), dose per cell"
            if grid
            else "single probe position, dose per probe",
            "acceptance_dose_key": f"dose_{accept:.2g}",
            "n_patterns": int(ts.sizes["pattern"]),
            "n_structures": int(ts["structure"].values.max() + 1),
            "thickness_nm": sorted({round(float(t), 2) for t in ts["thickness_nm"].values}),
            "simulate_seconds_or_cache": sim_s,
            "train_seconds": float(ms.attrs["train_seconds"]),
            "train_cpu_seconds": ms.attrs.get("train_cpu_seconds"),
            "train_steps": opts.steps,
            "n_parameters": int(ms.attrs["n_parameters"]),
            "heldout": evaluate(ms, ts, heldout(ts, opts), doses, accept),
        }
        print(tier, json.dumps(res[tier]["heldout"][f"dose_{accept:.2g}"], indent=1), flush=True)
    old = json.loads(RESULTS.read_text()).get("tiers", {}) if RESULTS.exists() else {}
    return {"tiers": {**old, **res}}


def section_curve(quick: bool, cache: str, tier: str = "debye_waller_pacbed") -> dict:
    """Learning curve: the same held-out structures, the network trained on a share of the rest."""
    ts = simulate_trainset([], trainset_opts(tier, quick, cache))
    opts = train_opts(quick, tier)
    accept = ACCEPT_DOSE[TIERS[tier][3]]
    ho = heldout(ts, opts)
    s = ts["structure"].values
    train_ids = np.unique(s[~ho])
    res = {}
    for share in (0.5,):
        keep = np.isin(s, train_ids[: int(share * len(train_ids))]) | ho
        sub = ts.isel(pattern=np.flatnonzero(keep))
        torch.manual_seed(0)
        # the held-out structures dropped by hand, so hold none out inside train_model
        part = sub.isel(pattern=np.flatnonzero(~ho[keep]))
        ms = train_model([part], dataclasses.replace(opts, holdout_fraction=0.0))
        m = evaluate(ms, sub, ho[keep], doses=(accept,), detail=0)[f"dose_{accept:.2g}"]
        res[f"train_structures_{int(share * len(train_ids))}"] = m
    res[f"train_structures_{len(train_ids)}"] = "see tiers." + tier
    return {"learning_curve_" + tier: res}


#: seeds of the larger Debye-Waller PACBED set (structures of their own, not the tier's)
LARGE_SEEDS = (41, 42)


def _joined_split(opts_list, n_held: int):
    """Simulate (or read from cache) several training sets, join them with distinct structure
    ids and hold ``n_held`` whole structures out: (patterns, held-out mask, train ids in a
    random order, simulate seconds)."""
    sets, off = [], 0
    t0 = time.perf_counter()
    for o in opts_list:
        ts = simulate_trainset([], o)
        ts["structure"] = ts["structure"] + off
        off = int(ts["structure"].values.max()) + 1
        sets.append(ts)
    sim_s = time.perf_counter() - t0
    ts = xr.concat(sets, "pattern", data_vars="minimal", coords="minimal", compat="override")
    ts.attrs = sets[0].attrs
    s = ts["structure"].values
    rng = np.random.default_rng(5)
    ids = np.unique(s)
    held = rng.choice(ids, n_held, replace=False)
    train_ids = rng.permutation(np.setdiff1d(ids, held))
    return ts, np.isin(s, held), train_ids, sim_s


def _large_set(quick: bool, cache: str, n_per_seed: int = 112, n_held: int = 40):
    """The larger Debye-Waller PACBED set (seeds :data:`LARGE_SEEDS`), see :func:`_joined_split`."""
    opts = [
        dataclasses.replace(
            trainset_opts("debye_waller_pacbed", quick, str(Path(cache) / f"cache{seed}")),
            n_structures=8 if quick else n_per_seed,
            seed=seed,
        )
        for seed in LARGE_SEEDS
    ]
    return _joined_split(opts, 4 if quick else n_held)


def section_curve_large(quick: bool, cache: str) -> dict:
    """Learning curve on a larger Debye-Waller PACBED set (~20 CPU-s per structure).

    ``len(LARGE_SEEDS) x 112`` structures, 40 of them held out; the network (default bench
    training options) trained on the first 35, 70 and all other structures.
    """
    ts, ho, train_ids, sim_s = _large_set(quick, cache)
    s = ts["structure"].values
    opts = dataclasses.replace(train_opts(quick, "debye_waller_pacbed"), holdout_fraction=0.0)
    accept = ACCEPT_DOSE[5]
    res = {
        "n_structures": len(np.unique(s)),
        "held_out_structures": int(len(np.unique(s[ho]))),
        "simulate_seconds_or_cache": sim_s,
        "train_steps": opts.steps,
    }
    for n in sorted({min(35, len(train_ids)), min(70, len(train_ids)), len(train_ids)}):
        keep = np.isin(s, train_ids[:n])
        torch.manual_seed(0)
        ms = train_model([ts.isel(pattern=np.flatnonzero(keep))], opts)
        sel = np.flatnonzero(keep | ho)
        m = evaluate(ms, ts.isel(pattern=sel), ho[sel], doses=(accept,), detail=0)
        res[f"train_structures_{n}"] = {
            **m[f"dose_{accept:.2g}"],
            "train_seconds": float(ms.attrs["train_seconds"]),
        }
        print("curve_large", n, res[f"train_structures_{n}"]["inplane.rmse_pm"], flush=True)
    return {"learning_curve_debye_waller_pacbed_large": res}


def section_long(quick: bool, cache: str, steps: int = 20000) -> dict:
    """The larger set's 184 training structures with 10x the bench's optimiser steps.

    Evaluated at the acceptance dose and at 1e9 e/pattern, where shot noise is negligible but
    the network is above its training doses (1e3-1e6), so that error is an upper bound of its
    noise-free error and the difference in quadrature (``inplane.shot_noise_part_pm``) a lower
    estimate of its shot-noise part, to be read against ``cramer_rao`` (bench/polar4d_crb.py).
    """
    ts, ho, train_ids, _ = _large_set(quick, cache)
    s = ts["structure"].values
    opts = dataclasses.replace(
        train_opts(quick, "debye_waller_pacbed"), holdout_fraction=0.0,
        steps=60 if quick else steps,
    )  # fmt: skip
    keep = np.isin(s, train_ids)
    torch.manual_seed(0)
    ms = train_model([ts.isel(pattern=np.flatnonzero(keep))], opts)
    sel = np.flatnonzero(keep | ho)
    accept = ACCEPT_DOSE[5]
    m = evaluate(ms, ts.isel(pattern=sel), ho[sel], doses=(accept, 1e9), detail=0)
    a, b = m[f"dose_{accept:.2g}"], m["dose_1e+09"]
    noise = float(np.sqrt(max(a["inplane.rmse_pm"] ** 2 - b["inplane.rmse_pm"] ** 2, 0.0)))
    res = {
        "train_structures": len(train_ids),
        "train_steps": opts.steps,
        "train_seconds": float(ms.attrs["train_seconds"]),
        f"dose_{accept:.2g}": a,
        "dose_1e+09": b,
        "inplane.shot_noise_part_pm": noise,
    }
    print("long", a["inplane.rmse_pm"], b["inplane.rmse_pm"], noise, flush=True)
    return {"long_training_debye_waller_pacbed_large": res}


#: SrTiO3 (no A-site disorder) static PACBED set of the dz check
DZ_SEEDS = (51, 52)


def _sym_features(p: np.ndarray) -> np.ndarray:
    """sqrt of the 4mm-averaged, normalised patterns on one orbit representative per pixel.

    dz is invariant under 4mm; first-order in-plane and tilt changes are odd, so they cancel in
    the average and dz is left beside thickness, defocus and second-order terms.
    """
    x = torch.from_numpy(np.asarray(p, np.float64) / p.sum((1, 2), keepdims=True))
    xs = torch.stack([apply_op(x, op) for op in SYMMETRY_OPS]).mean(0).numpy()
    k = p.shape[-1]
    c = k // 2
    i, j = np.arange(k)[:, None], np.arange(k)[None, :]
    return np.sqrt(xs[:, (i >= c) & (j >= i)])


def section_dz_static(quick: bool, cache: str, n_per_seed: int = 64, n_held: int = 28) -> dict:
    """Is static-lattice dz learnable at CPU scale once the A-site disorder is gone?

    SrTiO3 static PACBED (``len(DZ_SEEDS) x n_per_seed`` structures, ``n_held`` held out). The
    bench network (4000 steps) against two linear probes per thickness on
    :func:`_sym_features`: a ridge fitted on noise-free patterns (alpha by cross-validation),
    showing whether the dz information is there at all, and the noise-aware (LMMSE) ridge, whose
    penalty is the Poisson variance of the features at the test dose (``n / (32 N)``: sqrt of
    counts has variance 1 / 4N, averaged over ~8 pixels of an orbit), the best linear map this
    training set gives at that dose.
    """
    from sklearn.linear_model import RidgeCV

    opts_list = []
    for seed in DZ_SEEDS:
        o = trainset_opts("static_pacbed", quick, str(Path(cache) / f"sto_SrTiO3_{seed}"))
        opts_list.append(dataclasses.replace(
            o, optics=dataclasses.replace(o.optics, material="SrTiO3"),
            n_structures=6 if quick else n_per_seed, seed=seed, chunk_structures=4,
        ))  # fmt: skip
    ts, ho, _, _ = _joined_split(opts_list, 2 if quick else n_held)
    s = ts["structure"].values
    opts = dataclasses.replace(
        train_opts(quick, "static_pacbed"), holdout_fraction=0.0, steps=60 if quick else 4000
    )
    torch.manual_seed(0)
    ms = train_model([ts.isel(pattern=np.flatnonzero(~ho))], opts)
    res = {
        "material": "SrTiO3",
        "n_structures": len(np.unique(s)),
        "held_out_structures": len(np.unique(s[ho])),
        "train_steps": opts.steps,
    }
    net = evaluate(ms, ts, ho, doses=(25e4, 1e6), detail=0)
    keys = ("inplane.rmse_pm", "dz.rmse_pm", "mean.dz.rmse_pm", "dz.sign_accuracy", "dz.n_scored")
    res["network"] = {d: {k: net[d][k] for k in keys} for d in ("dose_2.5e+05", "dose_1e+06")}
    pats = ts["patterns"].values.astype(np.float64)
    dz, th = ts["true_disp_pm"].values[:, 2], ts["thickness_nm"].values
    clean = _sym_features(pats)
    err_clean, err_dose = [], {d: [] for d in (25e4, 1e6, 1e7, 1e8)}
    noisy_feats = {d: _sym_features(noisy(pats, d, 99).astype(np.float64)) for d in err_dose}
    for t in np.unique(th):
        tr, te = (th == t) & ~ho, (th == t) & ho
        mu, sd = clean[tr].mean(0), clean[tr].std(0) + 1e-12
        r = RidgeCV(alphas=np.logspace(-4, 3, 15)).fit((clean[tr] - mu) / sd, dz[tr])
        err_clean.append(r.predict((clean[te] - mu) / sd) - dz[te])
        x, y0 = clean[tr] - mu, dz[tr] - dz[tr].mean()
        for d in err_dose:
            w = np.linalg.solve(x.T @ x + len(x) / (32 * d) * np.eye(x.shape[1]), x.T @ y0)
            err_dose[d].append((noisy_feats[d][te] - mu) @ w + dz[tr].mean() - dz[te])
    rms = lambda e: float(np.sqrt(np.mean(np.concatenate(e) ** 2)))  # noqa: E731
    res["sym_ridge_noise_free.dz.rmse_pm"] = rms(err_clean)
    res["sym_lmmse_ridge.dz.rmse_pm"] = {f"dose_{d:.2g}": rms(e) for d, e in err_dose.items()}
    res["mean.dz.rmse_pm"] = float(np.sqrt(np.mean((dz[ho] - dz[~ho].mean()) ** 2)))
    print("dz_static", res, flush=True)
    return {"dz_static_srtio3": res}


def section_cross(quick: bool, cache: str) -> dict:
    """Train on one thermal model, test on the other's held-out structures (pairs with models)."""
    res = {}
    for s, d in (("static", "debye_waller"), ("static_pacbed", "debye_waller_pacbed")):
        for a, b in ((s, d), (d, s)):
            path = Path(cache) / f"model_{a}{'_quick' if quick else ''}.zarr"
            if not path.exists():
                continue
            ms = xr.open_zarr(path).load()
            ts = simulate_trainset([], trainset_opts(b, quick, cache))
            dose = ACCEPT_DOSE[TIERS[b][3]]
            out = evaluate(ms, ts, heldout(ts, train_opts(quick, b)), (dose,), detail=0)
            res[f"train_{a}_test_{b}"] = out[f"dose_{dose:.2g}"]
    old = json.loads(RESULTS.read_text()).get("cross_simulator", {}) if RESULTS.exists() else {}
    return {"cross_simulator": {**old, **res}}


def section_speed() -> dict:
    from scopeflow.polar4d.model import Polar4DNet

    torch.set_num_threads(1)
    from scopeflow.nn import fold_batchnorm

    model = fold_batchnorm(Polar4DNet(3.74, width=8)).to(memory_format=torch.channels_last)
    x = torch.rand(1024, 65, 65) * 100
    res = {}
    for tta in (False, True):
        predict(model, x[:64], tta=tta)
        n = 1024 if not tta else 256
        t0 = time.perf_counter()
        predict(model, x[:n], tta=tta)
        res[f"tta_{tta}"] = n / (time.perf_counter() - t0)
    # position-averaged input: 5 x 5 probes summed per cell, then one network call per cell
    from scopeflow.polar4d.infer import block_sum

    probes = np.random.default_rng(0).poisson(3.0, (20, 50, 65, 65)).astype(np.float32)
    t0 = time.perf_counter()
    cells = torch.from_numpy(block_sum(probes, 5).reshape(-1, 65, 65))
    predict(model, cells, tta=False)
    res["cell_average_5x5_probes_per_second"] = (
        probes.shape[0] * probes.shape[1] / (time.perf_counter() - t0)
    )
    return {"infer_patterns_per_second_1thread": res}


_MEM_CHILD = """
import resource, sys, numpy as np, torch, h5py
torch.set_num_threads(1)
from scopeflow.cli import _bound_heap
_bound_heap()  # as the CLI does for every stage
from scopeflow.polar4d.ingest import ingest_scan
from scopeflow.polar4d.infer import infer_scan
from scopeflow.polar4d.options import IngestOptions, InferOptions
import xarray as xr
path, model_path = sys.argv[1], sys.argv[2]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
scan = ingest_scan([], IngestOptions(path=path, format="hdf5", dataset="d", beam_energy_eV=3e5,
                   scan_step_nm=0.39, k_pixel_mrad=3.74, chunk_rows=4, beam_center_px=(32, 32)))
model = xr.open_zarr(model_path).load()
pm = infer_scan([scan, model], InferOptions(chunk_rows=4, tta=False, device="cpu"))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base, pm.attrs["patterns_per_second"])
"""


def section_memory(cache: str) -> dict:
    import h5py

    # the committed weights if this run trained none; the scan grows 4x in rows (fixed row
    # length), so the chunk of scan rows that infer holds stays the same size
    model_path = next(Path(cache).glob("model_*.zarr"), None) or (
        Path(__file__).parents[1] / "resources" / "polar4d" / "model_static.zarr"
    )
    res = {}
    cols = 64
    with tempfile.TemporaryDirectory() as tmp:
        for side in (32, 128):
            f = Path(tmp) / f"scan{side}.h5"
            with h5py.File(f, "w") as h:
                d = h.create_dataset("d", (side, cols, 65, 65), "f4", chunks=(1, cols, 65, 65))
                rng = np.random.default_rng(0)
                for r in range(side):
                    d[r] = rng.poisson(3.0, (cols, 65, 65))
            out = subprocess.run(
                [sys.executable, "-c", _MEM_CHILD, str(f), str(model_path)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            grow_kb, pps = out.stdout.split()[-2:]
            res[f"{side}x{cols}"] = {
                "data_MB": side * cols * 65 * 65 * 4 / 1e6,
                "peak_rss_growth_MB": float(grow_kb) / 1024,
                "patterns_per_second_no_tta": float(pps),
            }
    return {"streaming_memory": res}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--section", default="all")
    ap.add_argument("--tiers", default="static,debye_waller")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "polar4d_bench"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    head = {
        "device": "cpu (2 shared cores, 1 torch thread; other jobs running: timings under load)",
        "dataset": "abTEM 1.0.11, BaSrTiO3 2x2x2 super-cell (A-site disorder), 300 keV, 10 mrad, "
        "detector to 120 mrad binned 3x (3.74 mrad/px), finite projection, +-20 pm uniform, "
        "tilt +-1 mrad, defocus +-20 Å; single-probe tiers: 4 probe positions within +-0.15 "
        "cell of the Ti column; *_pacbed tiers: one position-averaged pattern per structure and "
        "thickness (5 x 5 probe grid over one cell at a random offset)",
        "quick": a.quick,
    }
    _merge(head)
    if a.section in ("train", "all"):
        _merge(section_train(a.quick, a.cache, a.tiers.split(",")))
    if a.section in ("curve", "all"):
        _merge(section_curve(a.quick, a.cache))
    if a.section == "curve_large":  # ~75 CPU-min of abTEM: not part of "all"
        _merge(section_curve_large(a.quick, a.cache))
    if a.section == "dz_static":  # ~13 CPU-min of abTEM (cached) and ~3 min of training
        _merge(section_dz_static(a.quick, a.cache))
    if a.section == "long":  # the curve_large set (cached there) and ~12 min of training
        _merge(section_long(a.quick, a.cache))
    if a.section in ("cross", "all"):
        _merge(section_cross(a.quick, a.cache))
    if a.section in ("speed", "all"):
        _merge(section_speed())
    if a.section in ("memory", "all"):
        _merge(section_memory(a.cache))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(_merge({"peak_rss_MB": peak}), indent=1))


if __name__ == "__main__":
    main()
