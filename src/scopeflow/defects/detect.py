"""Stage ``detect``: defect detections from the network and from the classical baseline.

Frames are read from the (lazy) movie ``chunk_frames`` at a time, so memory is bounded by the
chunk; the network sees ``batch_frames`` frames per forward pass (the GPU path batches frames on
the chosen device). Every frame gets a lattice fit (Fourier peaks, origin unwrapped across
frames) that gives each detection its lattice site and the drift for the later stages.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import xarray as xr

from scopeflow.defects.baseline import detect_frame_baseline
from scopeflow.defects.lattice import (
    A_WS2,
    align_basis,
    fit_lattice_fft,
    nearest_site,
    unwrap_origins,
)
from scopeflow.defects.options import DetectOptions
from scopeflow.defects.unet import blobs, build_model, predict
from scopeflow.nn import fold_batchnorm, load_state_bytes, select_device

__all__ = ["check_movie", "load_model", "detect_movie", "TABLE_FIELDS"]

#: columns of a detections table (prefixed ``nn_`` / ``baseline_`` in the store)
TABLE_FIELDS = ("frame", "row", "col", "class", "score", "site_i", "site_j", "sublattice")
_UNITS = {"row": "px", "col": "px", "frame": "frame"}


def check_movie(movie: xr.Dataset, where: str) -> None:
    """Raise a clear error for a movie without the expected dims or calibration."""
    if "image" not in movie or movie["image"].dims != ("frame", "row", "col"):
        raise ValueError(f"{where}: expected variable 'image' with dims (frame, row, col)")
    for key in ("pixel_size", "frame_time"):
        if movie.attrs.get(key) is None:
            raise ValueError(f"{where}: the movie has no '{key}' attribute")


def load_model(store: xr.Dataset, device: torch.device) -> tuple[torch.nn.Module, int]:
    """Rebuild the network from a ``defects.model`` store for inference.

    Batch norms are folded into the convolutions (:func:`scopeflow.nn.fold_batchnorm`, exact in eval
    mode) and the weights use the channels-last layout: together ~2x faster on a CPU.

    Returns
    -------
    model : torch.nn.Module
        In eval mode on ``device``; feed it channels-last inputs.
    depth : int
    """
    arch = store.attrs["architecture"]
    model = build_model(int(arch["width"]), int(arch["depth"]))
    load_state_bytes(model, store["weights"].values)
    model = fold_batchnorm(model)
    return model.to(device).to(memory_format=torch.channels_last), int(arch["depth"])


def _fit_binned(frame: np.ndarray, a_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Lattice fit on the 2x2-binned frame (4x cheaper FFT), returned in full-resolution px.

    A binned pixel i covers full-resolution pixels 2i and 2i + 1 (centre 2i + 0.5).
    """
    ny, nx = (frame.shape[0] // 2) * 2, (frame.shape[1] // 2) * 2
    binned = frame[:ny, :nx].reshape(ny // 2, 2, nx // 2, 2).sum((1, 3))
    vec, origin = fit_lattice_fft(binned, a_px / 2)
    return vec * 2, origin * 2 + 0.5


def _empty() -> dict[str, list]:
    return {k: [] for k in TABLE_FIELDS}


def _append(table: dict, det: dict, frame: int, vectors: np.ndarray, origin: np.ndarray) -> None:
    n = len(det["row"])
    i, j, sub, _ = nearest_site(np.stack([det["row"], det["col"]], 1), vectors, origin)
    table["frame"].append(np.full(n, frame, np.int32))
    table["row"].append(det["row"].astype(np.float32))
    table["col"].append(det["col"].astype(np.float32))
    table["class"].append(det["class"].astype(np.int8))
    table["score"].append(det["score"].astype(np.float32))
    table["site_i"].append(i.astype(np.int32))
    table["site_j"].append(j.astype(np.int32))
    table["sublattice"].append(sub.astype(np.int8))


def detect_movie(inputs: list[xr.Dataset], opts: DetectOptions) -> xr.Dataset:
    """Stage ``detect``: a ``defects.detections`` store.

    Parameters
    ----------
    inputs : [movie, model]
        ``defects.movie`` and ``defects.model`` (the model is only read for ``method`` "nn" or
        "both").

    Returns
    -------
    xarray.Dataset
        Tables ``nn_<field>`` along ``nn_point`` and ``baseline_<field>`` along
        ``baseline_point`` with fields :data:`TABLE_FIELDS` (row/col in px, class codes of
        :mod:`scopeflow.defects.lattice`, score in [0, 1], lattice site (i, j, sublattice 0 metal
        / 1 S)); ``lattice_vectors (frame, basis, axis)`` and ``lattice_origin (frame, axis)``
        [px]; attrs pixel_size, frame_time, dose, electron_dose and seconds per frame of each
        method.
    """
    movie, model_store = inputs
    check_movie(movie, "defects detect")
    ps = float(movie.attrs["pixel_size"])
    image = movie["image"]
    nf = image.sizes["frame"]
    a_px = A_WS2 / ps
    methods = ("nn", "baseline") if opts.method == "both" else (opts.method,)
    device = select_device(opts.device)
    model = depth = None
    if "nn" in methods:
        model, depth = load_model(model_store, device)
    cal = model_store.attrs.get("calibration", {})
    sigma_px = (
        float(cal.get("probe_sigma", movie.attrs.get("simulation", {}).get("probe_sigma", 0.45)))
        / ps
    )
    min_dist = int(np.floor(opts.min_distance / ps))
    tables = {m: _empty() for m in methods}
    seconds = dict.fromkeys(methods, 0.0)
    vecs, origins = np.zeros((nf, 2, 2)), np.zeros((nf, 2))
    t_fit = 0.0
    for start in range(0, nf, opts.chunk_frames):
        stop = min(nf, start + opts.chunk_frames)
        chunk = np.asarray(image.isel(frame=slice(start, stop)).values, np.float32)
        if not np.isfinite(chunk).all():
            raise ValueError(f"defects detect: non-finite pixels in frames {start}..{stop - 1}")
        t0 = time.perf_counter()
        for k in range(stop - start):
            f = start + k
            vecs[f], origins[f] = _fit_binned(chunk[k], a_px)
            if f > 0:  # same basis in every frame, so site indices compare across frames
                vecs[f] = align_basis(vecs[f], vecs[f - 1])
        lo = max(0, start - 1)
        origins[lo:stop] = unwrap_origins(origins[lo:stop], vecs[lo:stop])
        t_fit += time.perf_counter() - t0
        if "nn" in methods:
            t0 = time.perf_counter()
            for b in range(0, stop - start, opts.batch_frames):
                x = torch.from_numpy(chunk[b : b + opts.batch_frames]).to(device)
                prob = predict(model, x, depth).cpu().numpy()
                for k in range(len(prob)):
                    f = start + b + k
                    _append(tables["nn"], blobs(prob[k], opts.min_score), f, vecs[f], origins[f])
            seconds["nn"] += time.perf_counter() - t0
        if "baseline" in methods:
            t0 = time.perf_counter()
            for k in range(stop - start):
                f = start + k
                det = detect_frame_baseline(
                    chunk[k], vecs[f], origins[f], sigma_px=sigma_px, min_distance_px=min_dist
                )
                _append(tables["baseline"], det, f, vecs[f], origins[f])
            seconds["baseline"] += time.perf_counter() - t0
    ds = xr.Dataset(
        {
            "lattice_vectors": (("frame", "basis", "axis"), vecs, {"units": "px"}),
            "lattice_origin": (("frame", "axis"), origins, {"units": "px"}),
        },
        coords={
            "frame": ("frame", np.arange(nf), {"units": "frame"}),
            "basis": ("basis", np.arange(2), {"units": "1", "names": ["a1", "a2"]}),
            "axis": ("axis", np.arange(2), {"units": "1", "names": ["row", "col"]}),
        },
    )
    for m in methods:
        for key in TABLE_FIELDS:
            parts = tables[m][key]
            arr = np.concatenate(parts) if parts else np.zeros(0)
            ds[f"{m}_{key}"] = (f"{m}_point", arr, {"units": _UNITS.get(key, "1")})
        fit_share = t_fit / nf
        ds.attrs[f"{m}_seconds_per_frame"] = seconds[m] / nf + fit_share
    for key in ("pixel_size", "frame_time", "dose", "electron_dose"):
        ds.attrs[key] = movie.attrs.get(key)
    ds.attrs.update(methods=list(methods), device=str(device), lattice_constant_A=A_WS2)
    return ds
