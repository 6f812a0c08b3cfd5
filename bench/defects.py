"""Benchmark of the defects technique: accuracy vs truth, network vs classical baseline, speed.

    python bench/defects.py [--quick] [--model STORE] [--train-threads 2]
    python bench/defects.py --kinetics-coverage 100
    python bench/defects.py --kinetics-floor 200

Simulates the acceptance movie (512^2 px, 40 frames, dose 20 counts at a W peak, 0.2 Å/px,
0.5 px scan jitter, background 0.1, beam damage from frame 28), trains the network with the
default options (unless ``--model`` gives a trained ``defects.model`` Zarr store), runs detect
(network and baseline side by side), classify, track, kinetics and analyze, then measures
detect + classify throughput on 1024^2 frames at 1 and 2 threads (``detect.nn.frames_per_second``
is the better of the two, one-off GMM fit included), and scores the same network on five more
movies of the same settings (``robustness``, seeds 1-5). Writes ``bench/results/defects.json``.
Timings are wall-clock on a machine shared with other jobs (load averages and CPU seconds are
recorded). Single S vacancies are scored per frame (``detect.nn.*``) and combined over frames
per lattice site (``detect.nn_temporal.*``, the acceptance number); kinetics use the per-frame
table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import resource
import time

import numpy as np
import torch
import xarray as xr

from scopeflow.defects.options import (
    AnalyzeOptions,
    ClassifyOptions,
    DetectOptions,
    KineticsOptions,
    SimulateOptions,
    TrackOptions,
    TrainOptions,
)
from scopeflow.defects.stages import STAGES

OUT = pathlib.Path(__file__).parent / "results" / "defects.json"


def machine_probe() -> float:
    """GFLOP/s of a float32 1024^2 matrix product on this machine now (its speed drifts by up to
    ~1.4x between runs on this shared 2-core box: timings compare only within one run)."""
    a = np.random.default_rng(0).random((1024, 1024), np.float32)
    a @ a
    t0 = time.perf_counter()
    for _ in range(10):
        a @ a
    return 10 * 2 * 1024**3 / (time.perf_counter() - t0) / 1e9


def _run(name, inputs, opts):
    t0 = time.perf_counter()
    out = STAGES[name].func(inputs, opts)
    return out, time.perf_counter() - t0


def throughput(model: xr.Dataset, threads: int, n_frames: int, size: int) -> dict:
    """Detect (network) + classify frames/s on ``size``^2 frames."""
    torch.set_num_threads(threads)
    load = os.getloadavg()
    mv = STAGES["simulate"].func(
        [], SimulateOptions(shape=(size, size), n_frames=n_frames, disorder_start=n_frames, seed=21)
    )
    cpu0 = time.process_time()
    det, t_det = _run(
        "detect", [mv, model], DetectOptions(method="nn", chunk_frames=n_frames, batch_frames=4)
    )
    cls, t_cls = _run("classify", [det, mv], ClassifyOptions(source="nn"))
    t_fit = float(cls.attrs["gmm_seconds"])
    return {
        "threads": threads,
        "load_average_before": load,
        "cpu_seconds": time.process_time() - cpu0,
        "frame_size": size,
        "frames": n_frames,
        "detect_seconds": t_det,
        "classify_seconds": t_cls,
        "classify_gmm_fit_seconds": t_fit,
        "frames_per_second": n_frames / (t_det + t_cls),
        "frames_per_second_excluding_one_off_gmm_fit": n_frames / (t_det + t_cls - t_fit),
        "detect_frames_per_second": n_frames / t_det,
    }


#: confusion measured by classify on the dose-20 benchmark movie (rows true static Mo, Mo-V_S,
#: Mo-V_S2, Mo-2V_S; columns those labels and "other"), counts of commit 465f069's bench run
BENCH_CONFUSION = np.array(
    [[256, 65, 2, 16, 0], [23, 297, 3, 29, 0], [6, 3, 268, 3, 0], [0, 27, 4, 201, 0]], float
)


def kinetics_coverage(n_seeds: int, memories=(0.0, 0.15, 0.3), n_boot: int = 200) -> dict:
    """Coverage of the transition-matrix intervals over simulated complexes with known truth.

    Complexes switch by the movie simulator's kinetics
    (:func:`scopeflow.defects.kinetics_sim.labelled_complexes`, 30 complexes + 15 static Mo,
    40 frames, like the benchmark movie) and are labelled through the benchmark's measured
    confusion with a label memory along tracks; for each memory, the fraction of the 9 x
    ``n_seeds`` nominal-95 % intervals that hold the true matrix, and the mean absolute error,
    for the uncorrected matrix, the correction with label memory (the stage's) and the
    independent-error matrix method.
    """
    from scopeflow.defects.kinetics_sim import labelled_complexes
    from scopeflow.defects.transitions import transition_analysis

    p = np.asarray(SimulateOptions().transition).reshape(3, 3)
    conf = BENCH_CONFUSION / BENCH_CONFUSION.sum(1, keepdims=True)
    out = {"n_seeds": n_seeds, "n_boot": n_boot, "confidence": 0.95, "confusion": conf.tolist()}
    for mem in memories:
        acc = {"uncorrected": [], "corrected": [], "corrected_independent_errors": []}
        err = {k: [] for k in acc}
        for seed in range(n_seeds):
            track, frame, label, true = labelled_complexes(seed, p, conf, mem)
            for memory, keys in ((True, ("uncorrected", "corrected")), (False, ("corrected",))):
                r = transition_analysis(
                    track, frame, label, true, 3, n_boot=n_boot, confidence=0.95,
                    rng=np.random.default_rng(seed), memory=memory,
                )  # fmt: skip
                for key in keys:
                    name = key if memory else "corrected_independent_errors"
                    acc[name].append(((p >= r[key + "_lo"]) & (p <= r[key + "_hi"])).mean())
                    err[name].append(np.abs(r[key] - p).mean())
        out[f"memory_{mem}"] = {
            k: {"coverage": float(np.mean(acc[k])), "mean_abs_error": float(np.mean(err[k]))}
            for k in acc
        }
    return out


def _floor_one(seed: int) -> tuple[float, float, int, float]:
    """Realised D of one acceptance-settings movie: (every step starting in the image, pairs
    seen in both frames, number of steps, hop rate) [Å^2/s, Å^2/s, 1, 1/frame]."""
    from scopeflow.defects.lattice import OBJECT_NAMES
    from scopeflow.defects.simulate import simulate_frames

    opts = SimulateOptions(seed=seed)
    _, truth, gt = simulate_frames(opts)
    sel = (truth["object"] == OBJECT_NAMES.index("V_S")) & (truth["track"] >= 0)
    t, f, r, c = (truth[k][sel] for k in ("track", "frame", "row", "col"))
    order = np.lexsort((f, t))
    t, f, r, c = t[order], f[order], r[order], c[order]
    ok = (np.diff(t) == 0) & (np.diff(f) == 1)
    d2 = (np.diff(r) ** 2 + np.diff(c) ** 2)[ok] * opts.pixel_size**2
    pairs = float(d2.mean() / (4 * opts.frame_time))
    return gt["D_realised_A2_per_s"], pairs, gt["D_realised_steps"], gt["hop_rate_per_frame"]


def kinetics_floor(n_seeds: int, jobs: int = 2) -> dict:
    """How close to the set D any estimator can come on one acceptance movie.

    The realised D of each simulated movie (512^2 x 40 frames, the acceptance settings, seeds
    1000 onwards) is what an ideal observer measures: every free S vacancy seen in every frame,
    linked without error, with every lattice step that starts in the image. Its spread over
    movies is the sampling floor of one movie's D. Also the Poisson expectation of that spread
    (``sqrt((1 + k) / (k n))`` for n steps at k hops per frame) and the realised D over pairs
    seen in both frames (what a field of view alone makes of it: moves across the edge lost).
    """
    from concurrent.futures import ProcessPoolExecutor

    seeds = range(1000, 1000 + n_seeds)
    with ProcessPoolExecutor(jobs) as ex:
        rows = np.array(list(ex.map(_floor_one, seeds, chunksize=4)))
    d_set = SimulateOptions().diffusion
    real, pairs, n, k = rows[:, 0] / d_set, rows[:, 1] / d_set, rows[:, 2], rows[:, 3]
    err = real - 1

    def stats(v: np.ndarray) -> dict:
        e = v - 1
        return {
            "mean": float(v.mean()),
            "sd": float(v.std(ddof=1)),
            "sem": float(v.std(ddof=1) / np.sqrt(len(v))),
            "quantiles_5_50_95": np.quantile(v, [0.05, 0.5, 0.95]).tolist(),
            "within_5_percent": float((np.abs(e) <= 0.05).mean()),
        }

    return {
        "n_seeds": n_seeds,
        "seeds": [seeds[0], seeds[-1]],
        "d_set_A2_per_s": d_set,
        "realised_over_set": stats(real),
        "realised_pairs_both_frames_over_set": stats(pairs),
        "steps_per_movie": float(n.mean()),
        "poisson_relative_sd": float(np.mean(np.sqrt((1 + k) / (k * n)))),
        "rms_error_vs_set": float(np.sqrt(np.mean(err**2))),
    }


def score_movie(movie: xr.Dataset, model: xr.Dataset) -> tuple[tuple, dict]:
    """detect, classify, track, kinetics and analyze with default options: the stores and the
    seconds of each stage."""
    t = {}
    det, t["detect"] = _run("detect", [movie, model], DetectOptions())
    cls, t["classify"] = _run("classify", [det, movie], ClassifyOptions())
    trk, t["track"] = _run("track", [cls], TrackOptions())
    kin, t["kinetics"] = _run("kinetics", [trk], KineticsOptions())
    ana, t["analyze"] = _run("analyze", [movie, det, cls, trk, kin], AnalyzeOptions())
    return (det, cls, trk, kin, ana), t


ROBUST_KEYS = (
    "detect.nn_temporal.f1.V_S",
    "detect.nn.f1.Mo",
    "detect.nn.f1.V_W",
    "kinetics.D_rel_error",
    "kinetics.D_rel_error_vs_realised",
    "kinetics.D_realised_A2_per_s",
    "kinetics.D_hop.A2_per_s.value",
    "kinetics.D_hop.A2_per_s.lo",
    "kinetics.D_hop.A2_per_s.hi",
    "kinetics.D_msd.A2_per_s.value",
    "track.purity",
    "track.purity.V_S",
    "kinetics.transition_within_ci.corrected",
    "kinetics.transition_within_ci.uncorrected",
)


def robustness(model: xr.Dataset, seeds: list[int]) -> dict:
    """The acceptance metrics on other movies of the same settings (the trained network reused).

    One 512^2 x 40 movie holds ~50 free S vacancies making ~400 hops: the spread over seeds shows
    how far a single movie's numbers are from their expectation.
    """
    out = {}
    for seed in seeds:
        movie = STAGES["simulate"].func([], SimulateOptions(seed=seed))
        m = score_movie(movie, model)[0][-1].attrs["metrics"]
        out[f"seed_{seed}"] = {k: m.get(k) for k in ROBUST_KEYS}
        print(
            "robustness",
            seed,
            {k: round(v, 4) for k, v in out[f"seed_{seed}"].items() if v is not None},
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small movie, short training")
    ap.add_argument("--model", help="reuse a trained defects.model Zarr store")
    ap.add_argument("--train-threads", type=int, default=2)
    ap.add_argument("--save-model", help="write the trained model store here")
    ap.add_argument(
        "--kinetics-coverage",
        type=int,
        metavar="N_SEEDS",
        help="only measure the transition-interval coverage over N_SEEDS simulated processes "
        "and merge it into the results JSON (key kinetics_coverage)",
    )
    ap.add_argument(
        "--kinetics-floor",
        type=int,
        metavar="N_SEEDS",
        help="only measure the spread of the realised D over N_SEEDS acceptance movies (the "
        "floor of any D estimate from one movie) and merge it into the results JSON (key "
        "kinetics_floor)",
    )
    ap.add_argument(
        "--robustness-seeds",
        default="1,2,3,4,5",
        help="comma-separated movie seeds scored with the same network besides the acceptance "
        "movie (seed 0); '' for none",
    )
    args = ap.parse_args()
    for key, n, measure in (
        ("kinetics_coverage", args.kinetics_coverage, kinetics_coverage),
        ("kinetics_floor", args.kinetics_floor, kinetics_floor),
    ):
        if n:  # a section measured on its own, merged into the results JSON
            t0 = time.perf_counter()
            out = measure(n)
            out["seconds"] = time.perf_counter() - t0
            out["load_average"] = os.getloadavg()
            res = json.loads(OUT.read_text()) if OUT.exists() else {}
            res[key] = out
            OUT.write_text(json.dumps(res, indent=1, default=float))
            print(json.dumps(out, indent=1, default=float))
            return
    res: dict = {
        "load_average_start": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "note": "wall-clock timings on a 2-core machine (2 hyper-threads of one core), nothing "
        "else running; machine_probe_gflops (matmul) at start and end shows its speed drift",
        "machine_probe_gflops_start": machine_probe(),
    }
    sim = SimulateOptions(seed=0)
    train = TrainOptions()
    if args.quick:
        sim = dataclasses.replace(sim, shape=(256, 256), n_frames=12, disorder_start=8)
        train = dataclasses.replace(train, steps=200, pool_frames=16)
    movie, t = _run("simulate", [], sim)
    res["simulate"] = {"options": dataclasses.asdict(sim), "seconds": t}
    if args.model:
        model = xr.open_zarr(args.model, consolidated=False).load()
        res["train"] = {
            "reused_store": args.model,
            **{k: model.attrs.get(k) for k in ("train_seconds", "n_parameters")},
        }
    else:
        torch.set_num_threads(args.train_threads)
        model, t = _run("train", [movie], train)
        res["train"] = {
            "options": dataclasses.asdict(train),
            "seconds": t,
            "threads": args.train_threads,
            "n_parameters": model.attrs["n_parameters"],
            "final_loss": float(model["loss"].values[-50:].mean()),
        }
        if args.save_model:
            model.to_zarr(args.save_model, mode="w", zarr_format=3, consolidated=False)
    torch.set_num_threads(1)
    res["detect_options"] = dataclasses.asdict(DetectOptions())
    (det, cls, trk, kin, ana), t = score_movie(movie, model)
    res["seconds"] = {
        "detect_both_1thread": t["detect"],
        "classify": t["classify"],
        "track": t["track"],
        "kinetics": t["kinetics"],
    }
    res["metrics"] = ana.attrs["metrics"]
    res["ground_truth"] = movie.attrs["ground_truth"]
    res["transition"] = {
        k: np.asarray(kin[k].values).round(4).tolist()
        for k in (
            "transition_uncorrected",
            "transition_uncorrected_lo",
            "transition_uncorrected_hi",
            "transition_corrected",
            "transition_corrected_lo",
            "transition_corrected_hi",
            "transition_counts",
        )
    }
    res["confusion"] = np.asarray(cls["confusion"].values).tolist() if "confusion" in cls else None
    res["diffusion"] = kin.attrs["diffusion"]
    seeds = [int(x) for x in args.robustness_seeds.split(",") if x.strip()]
    if seeds and not args.quick:
        res["robustness"] = robustness(model, seeds)
    size, nf = (512, 4) if args.quick else (1024, 16)
    res["throughput"] = [throughput(model, th, nf, size) for th in (1, 2)]
    if not args.quick:  # the acceptance movie's length at 1024^2: the one-off GMM fit amortised
        res["throughput"].append(throughput(model, 2, 40, size))
    # acceptance number: detect (incl. the temporal combination) + classify (incl. its one-off
    # GMM fit) on 1024^2 frames, the better of 1 and 2 torch threads
    m = res["metrics"]
    m["detect.nn.frames_per_second_512_detect_only_1thread"] = m["detect.nn.frames_per_second"]
    short = [r for r in res["throughput"] if r["frames"] == nf]
    m["detect.nn.frames_per_second"] = max(r["frames_per_second"] for r in short)
    for r in res["throughput"]:
        if r["frames"] != nf:
            m[f"detect.nn.frames_per_second_{r['frames']}_frames"] = r["frames_per_second"]
    res["machine_probe_gflops_end"] = machine_probe()
    res["peak_rss_MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["load_average_end"] = os.getloadavg()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    path = OUT.with_name("defects_quick.json") if args.quick else OUT
    if path.exists():  # sections measured on their own (--kinetics-coverage, --kinetics-floor)
        old = json.loads(path.read_text())
        res.update({k: old[k] for k in ("kinetics_coverage", "kinetics_floor") if k in old})
    path.write_text(json.dumps(res, indent=1, default=float))
    m = res["metrics"]
    for key in sorted(m):
        if key.startswith(
            (
                "detect.nn.f1",
                "detect.nn_temporal.f1",
                "detect.baseline.f1",
                "detect.nn.late.f1",
                "detect.nn_temporal.late.f1",
                "detect.nn.frames_per_second",
                "detect.baseline.late.f1",
                "track.purity",
                "kinetics.D_rel",
                "kinetics.transition_abs",
                "kinetics.transition_within",
            )
        ):
            print(f"{key:55s} {m[key]:.4f}")
    for r in res["throughput"]:
        print("throughput", r)
    print("wrote", path)


if __name__ == "__main__":
    main()
