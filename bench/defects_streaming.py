"""Streaming benchmark: peak memory of the defects detect stage as the movie grows 4x.

A stage whose input is larger than the job's memory must stream it chunk by chunk (issue 6,
DESIGN.md §2). This runs the real CLI (``python -m scopeflow defects detect``, ``--method``:
the network by default) on movies of ``--frames`` and 4x as many 1024^2 float32 frames (500
and 2000 frames: 2 and 8 GB), in separate processes, and reads each run's peak RSS from the
provenance the CLI writes. The long movies are built lazily (dask) by repeating a simulated base
movie, so neither the builder nor the stage ever holds the whole movie in memory.

Usage: ``python bench/defects_streaming.py [--frames 500] [--threads 1] [--method nn]``; writes
``bench/results/defects_streaming.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dask.array as da
import xarray as xr

from scopeflow.defects.options import SimulateOptions, TrainOptions
from scopeflow.defects.stages import STAGES
from scopeflow.io import read_store, write_store

OUT = Path(__file__).parent / "results" / "defects_streaming.json"


def long_movie(base: xr.Dataset, n_frames: int) -> xr.Dataset:
    """``n_frames`` frames repeating ``base`` lazily (one frame per chunk), without truth."""
    frames = base["image"].data.rechunk({0: 1})
    reps = -(-n_frames // frames.shape[0])
    image = da.concatenate([frames] * reps, axis=0)[:n_frames]
    ds = xr.Dataset(
        {"image": (("frame", "row", "col"), image, base["image"].attrs)},
        coords={
            "row": base["row"],
            "col": base["col"],
        },
        attrs={k: v for k, v in base.attrs.items() if k not in ("ground_truth", "scopeflow")},
    )
    return ds


def run_detect(movie: Path, model: Path, out: Path, threads: int, method: str) -> dict:
    params = json.dumps({"method": method, "chunk_frames": 8})
    cmd = [sys.executable, "-m", "scopeflow", "defects", "detect", "--in", str(movie)]
    cmd += ["--in", str(model), "--out", str(out), "--params", params, "--threads", str(threads)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    prov = read_store(out, "defects.detections").attrs["provenance"]
    return {"wall_seconds": time.perf_counter() - t0, "peak_rss_mb": prov["peak_rss_mb"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=500, help="frames of the short movie")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--method", default="nn", choices=("nn", "baseline", "both"))
    ap.add_argument(
        "--model", help="trained defects.model store (default: a 30-step network, few detections)"
    )
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    result = {
        "frame_shape": [1024, 1024],
        "threads": args.threads,
        "method": args.method,
        "note": "wall-clock on a 2-core machine shared with other jobs",
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = STAGES["simulate"].func(
            [], SimulateOptions(shape=(1024, 1024), n_frames=16, disorder_start=12, seed=0)
        )
        write_store(base, tmp / "base.zarr", "defects.movie")
        base = read_store(tmp / "base.zarr", "defects.movie")
        model_path = Path(args.model) if args.model else tmp / "model.zarr"
        if not args.model:  # a small network: memory and throughput, not accuracy
            model = STAGES["train"].func([base], TrainOptions(steps=30, crop=128, pool_frames=4))
            write_store(model, model_path, "defects.model")
        result["model"] = str(model_path)
        for n in (args.frames, 4 * args.frames):
            movie = write_store(long_movie(base, n), tmp / f"movie{n}.zarr", "defects.movie")
            run = run_detect(movie, model_path, tmp / f"det{n}.zarr", args.threads, args.method)
            det = read_store(tmp / f"det{n}.zarr", "defects.detections")
            run.update(frames=n, movie_gb=n * 1024 * 1024 * 4 / 1e9)
            run["detections"] = {d: int(k) for d, k in det.sizes.items() if d.endswith("_point")}
            shutil.rmtree(movie)
            run["frames_per_second"] = n / run["wall_seconds"]
            result["runs"].append(run)
            print(json.dumps(run), flush=True)
            OUT.parent.mkdir(parents=True, exist_ok=True)  # written after every run
            OUT.write_text(json.dumps(result, indent=1) + "\n")
    short, long = result["runs"]
    result["peak_rss_ratio_long_over_short"] = long["peak_rss_mb"] / short["peak_rss_mb"]
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
