"""Stage ``detect``: defect detections from the network and from the classical baseline.

Frames are read from the (lazy) movie ``chunk_frames`` at a time; once a detection table holds
:data:`SPILL_ROWS` rows it is appended to temporary on-disk Zarr arrays (returned as dask arrays
that the store writer copies chunk by chunk), so memory is bounded by the chunk and that buffer,
not by the movie length (a table that never reached it stays in memory: writing small Zarr
arrays cost ~15 ms per 1024^2 frame of a 16-frame movie);
the network sees ``batch_frames`` frames per forward pass (the GPU path batches frames on
the chosen device). Every frame gets a lattice fit (Fourier peaks, origin unwrapped across
frames) that gives each detection its lattice site and the drift for the later stages.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time

import dask.array as da
import numpy as np
import torch
import xarray as xr
import zarr
from scipy import ndimage

from scopeflow.defects.baseline import detect_frame_baseline
from scopeflow.defects.lattice import (
    A_WS2,
    BG,
    TABLE_FIELDS,
    V_S,
    V_S2,
    V_W,
    align_basis,
    fit_lattice_fft,
    nearest_site,
    unwrap_origins,
)
from scopeflow.defects.options import DetectOptions
from scopeflow.defects.temporal import combine_sites, site_evidence
from scopeflow.defects.unet import architecture_widths, blobs, build_model, predict
from scopeflow.nn import fold_batchnorm, load_state_bytes, select_device

__all__ = [
    "check_movie",
    "load_model",
    "drop_rim_vacancies",
    "detect_movie",
    "TABLE_FIELDS",
    "SPILL_ROWS",
]

_UNITS = {"row": "px", "col": "px", "frame": "frame"}


def check_movie(movie: xr.Dataset, where: str) -> None:
    """Raise a clear error for a movie without the expected dims or calibration."""
    if "image" not in movie or movie["image"].dims != ("frame", "row", "col"):
        raise ValueError(f"{where}: expected variable 'image' with dims (frame, row, col)")
    for key in ("pixel_size", "frame_time"):
        if movie.attrs.get(key) is None:
            raise ValueError(f"{where}: the movie has no '{key}' attribute")


def load_model(store: xr.Dataset, device: torch.device) -> torch.nn.Module:
    """Rebuild the network from a ``defects.model`` store for inference.

    Batch norms are folded into the convolutions (:func:`scopeflow.nn.fold_batchnorm`, exact in eval
    mode) and the weights use the channels-last layout: together ~2x faster on a CPU.

    Returns
    -------
    scopeflow.nn.UNet
        In eval mode on ``device``; feed it channels-last inputs.
    """
    arch = store.attrs["architecture"]
    model = build_model(architecture_widths(arch), int(arch.get("space_to_depth", 1)))
    load_state_bytes(model, store["weights"].values)
    model = fold_batchnorm(model)
    return model.to(device).to(memory_format=torch.channels_last)


def _fit_binned(frame: np.ndarray, a_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Lattice fit on the 2x2-binned frame (4x cheaper FFT), returned in full-resolution px.

    A binned pixel i covers full-resolution pixels 2i and 2i + 1 (centre 2i + 0.5).
    """
    ny, nx = (frame.shape[0] // 2) * 2, (frame.shape[1] // 2) * 2
    # four strided adds: ~4x faster than a reshape-sum over the interleaved axes
    binned = frame[0:ny:2, 0:nx:2] + frame[1:ny:2, 0:nx:2]
    binned += frame[0:ny:2, 1:nx:2]
    binned += frame[1:ny:2, 1:nx:2]
    vec, origin = fit_lattice_fft(binned, a_px / 2)
    return vec * 2, origin * 2 + 0.5


def drop_rim_vacancies(
    det: dict[str, np.ndarray], p_background: np.ndarray, vectors: np.ndarray, min_present: float
) -> dict[str, np.ndarray]:
    """Drop vacancy detections that touch a missing column (the rim of a hole or seam).

    A W vacancy is an empty metal site inside an intact lattice: its three nearest S columns
    (at ``(a1 + a2) / 3`` rotated by 0, 120 and 240 deg) and its six nearest metal columns (at
    ``+-a1, +-a2, +-(a1 - a2)``) must be present. A double S vacancy needs its three nearest metal
    columns (the opposite S -> metal offsets); its S neighbours are not tested because vacancy
    lines make them empty. The three-nearest-neighbour part is the definition the simulated
    truth uses (:mod:`scopeflow.defects.kinetics_sim`); the metal shell of a W vacancy also
    rejects empty sites on the seam around a rotated patch.

    Parameters
    ----------
    det : dict of (n,) arrays
        From :func:`scopeflow.defects.unet.blobs` (``row, col`` [full-resolution px]).
    p_background : (row, col) float
        Background probability on the binned grid.
    vectors : (2, 2) float
        Lattice vectors ``a1, a2`` of the frame [px].
    min_present : float
        Smallest ``1 - p_background`` accepted at every neighbour.

    Returns
    -------
    dict of (m,) arrays
        ``det`` without the rejected vacancies.
    """
    a1, a2 = vectors
    to_s = np.stack([a1 + a2, a2 - 2 * a1, a1 - 2 * a2]) / 3.0  # metal -> its 3 S neighbours
    metal_shell = np.stack([a1, -a1, a2, -a2, a1 - a2, a2 - a1])
    keep = np.ones(len(det["row"]), bool)
    for cls, offsets in ((V_W, np.concatenate([to_s, metal_shell])), (V_S2, -to_s)):
        sel = np.flatnonzero(det["class"] == cls)
        if len(sel) == 0:
            continue
        pos = np.stack([det["row"][sel], det["col"][sel]], 1)
        q = (pos[:, None, :] + offsets[None] - 0.5) / 2.0  # binned px
        present = 1.0 - ndimage.map_coordinates(
            p_background, [q[..., 0].ravel(), q[..., 1].ravel()], order=1, mode="nearest"
        ).reshape(len(sel), len(offsets))
        keep[sel] = present.min(1) >= min_present
    return {k: v[keep] for k, v in det.items()}


#: dtype of each table field
_DTYPES = {
    "frame": np.int32,
    "row": np.float32,
    "col": np.float32,
    "class": np.int8,
    "score": np.float32,
    "site_i": np.int32,
    "site_j": np.int32,
    "sublattice": np.int8,
}


def _empty() -> dict[str, list]:
    return {k: [] for k in TABLE_FIELDS}


def _spill(table: dict[str, list], root: str, method: str) -> None:
    """Append the buffered rows of one table to its on-disk Zarr arrays and empty the buffer."""
    for key in TABLE_FIELDS:
        path = os.path.join(root, f"{method}_{key}")
        if not os.path.exists(path):
            zarr.create_array(path, shape=(0,), chunks=(1 << 18,), dtype=_DTYPES[key])
        if table[key]:
            zarr.open_array(path, mode="a").append(np.concatenate(table[key]))
        table[key].clear()


#: buffered rows of a detection table before it goes to disk (~8 MB; ~250 frames of 1024^2)
SPILL_ROWS = 1 << 18


def _spill_dir() -> str:
    """A temporary directory for the detection tables, removed when the process exits."""
    root = tempfile.mkdtemp(prefix="scopeflow-detections-")
    atexit.register(shutil.rmtree, root, True)
    return root


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


def _double_vacancy_sites(det: dict, vectors: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """(k, 2) cell indices of the S sites of a frame's double-vacancy detections."""
    dbl = det["class"] == V_S2
    i, j, sub, _ = nearest_site(np.stack([det["row"][dbl], det["col"][dbl]], 1), vectors, origin)
    return np.stack([i, j], 1)[sub == 1]


#: frames whose temporally combined vacancies one hidden-Markov fit decides, and the frames of
#: context on each side: a vacancy stays ~3.5 frames on a site (leaving probability ~0.28), so
#: evidence 16 frames away changes a posterior by < 0.72**16 ~ 0.5 %; windows bound the memory of
#: long movies (a 40-frame movie is one window)
TEMPORAL_WINDOW, TEMPORAL_PAD = 64, 16


def _temporal_windows(
    table: dict[str, list],
    evidence: dict[int, tuple[np.ndarray, np.ndarray]],
    first: int,
    available: int,
    vecs: np.ndarray,
    origins: np.ndarray,
    threshold: float,
    fits: list[dict[str, float]],
) -> int:
    """Append the temporally combined single S vacancies of every complete window to ``table``.

    Windows of :data:`TEMPORAL_WINDOW` frames from ``first`` are decided once the frames up to
    :data:`TEMPORAL_PAD` past their end have evidence (``available`` frames so far); each is
    fitted (:func:`scopeflow.defects.temporal.combine_sites`) with that context on both sides.
    A vacancy is placed on its S site in the frame's lattice fit, so it follows the drift.
    Evidence no longer needed as context is dropped from ``evidence``.

    Parameters
    ----------
    evidence : dict
        Frame -> (S-site indices (m, 2), vacancy probabilities (m,)).
    fits : list
        Receives the fitted ``p_birth, p10, prior`` of every window.

    Returns
    -------
    int
        The first frame still undecided.
    """
    nf = len(vecs)
    while first < nf:
        core = min(nf, first + TEMPORAL_WINDOW)
        lo, hi = max(0, first - TEMPORAL_PAD), min(nf, core + TEMPORAL_PAD)
        if available < hi:
            break
        fr = [f for f in range(lo, hi) if f in evidence]
        frames = np.concatenate([np.full(len(evidence[f][1]), f - lo, np.int64) for f in fr])
        ij = np.concatenate([evidence[f][0] for f in fr])
        q = np.concatenate([evidence[f][1] for f in fr])
        res = combine_sites(frames, ij, q, hi - lo, threshold)
        keep = (res["frame"] + lo >= first) & (res["frame"] + lo < core)
        f = res["frame"][keep] + lo
        si, sj = res["site_i"][keep], res["site_j"][keep]
        pos = np.einsum("nk,nkl->nl", np.stack([si, sj], 1) + 1.0 / 3.0, vecs[f]) + origins[f]
        n = len(f)
        table["frame"].append(f.astype(np.int32))
        table["row"].append(pos[:, 0].astype(np.float32))
        table["col"].append(pos[:, 1].astype(np.float32))
        table["class"].append(np.full(n, V_S, np.int8))
        table["score"].append(res["score"][keep].astype(np.float32))
        table["site_i"].append(si.astype(np.int32))
        table["site_j"].append(sj.astype(np.int32))
        table["sublattice"].append(np.ones(n, np.int8))
        fits.append({k: float(res[k]) for k in ("p_birth", "p10", "prior")})
        first = core
        for old in [g for g in evidence if g < first - TEMPORAL_PAD]:
            del evidence[old]
    return first


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
        ``baseline_point``, and with ``temporal`` ``nn_temporal_<field>`` along
        ``nn_temporal_point`` (the network table with its single S vacancies replaced by the
        hop-coupled per-site chains of :mod:`scopeflow.defects.temporal`, placed on the
        frame's fitted S site, fitted in windows of :data:`TEMPORAL_WINDOW` frames; attrs
        ``temporal_vacancy_model``: fitted ``p_birth, p10, prior`` (window means) and
        ``windows``), with fields :data:`TABLE_FIELDS` (row/col in px, class codes of
        :mod:`scopeflow.defects.lattice`, score in [0, 1], lattice site (i, j, sublattice 0 metal
        / 1 S)), dask-backed when a table outgrew :data:`SPILL_ROWS` (read from a temporary
        directory that lives as long as the process), else in memory;
        ``lattice_vectors (frame, basis, axis)`` and ``lattice_origin (frame, axis)``
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
    if "nn" in methods and opts.temporal:
        methods = ("nn", "nn_temporal", *methods[1:])
    device = select_device(opts.device)
    model = None
    if "nn" in methods:
        model = load_model(model_store, device)
    cal = model_store.attrs.get("calibration", {})
    sigma_px = (
        float(cal.get("probe_sigma", movie.attrs.get("simulation", {}).get("probe_sigma", 0.45)))
        / ps
    )
    min_dist = int(np.floor(opts.min_distance / ps))
    tables = {m: _empty() for m in methods}
    spill, spilled = None, set()
    seconds = dict.fromkeys(methods, 0.0)
    vecs, origins = np.zeros((nf, 2, 2)), np.zeros((nf, 2))
    t_fit = 0.0
    evidence: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    undecided, fits, t_hmm = 0, [], 0.0
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
                prob, arg = (t.cpu().numpy() for t in predict(model, x))
                for k in range(len(prob)):
                    f = start + b + k
                    det = drop_rim_vacancies(
                        blobs(prob[k], opts.min_score, arg[k]),
                        prob[k, BG],
                        vecs[f],
                        opts.min_neighbour,
                    )
                    _append(tables["nn"], det, f, vecs[f], origins[f])
                    if "nn_temporal" in methods:  # every class but V_S as detected per frame
                        other = {k: v[det["class"] != V_S] for k, v in det.items()}
                        _append(tables["nn_temporal"], other, f, vecs[f], origins[f])
                        evidence[f] = site_evidence(
                            prob[k],
                            vecs[f],
                            origins[f],
                            _double_vacancy_sites(det, vecs[f], origins[f]),
                        )
            seconds["nn"] += time.perf_counter() - t0
            if "nn_temporal" in methods:
                t0 = time.perf_counter()
                undecided = _temporal_windows(
                    tables["nn_temporal"],
                    evidence,
                    undecided,
                    stop,
                    vecs,
                    origins,
                    opts.temporal_threshold,
                    fits,
                )
                t_hmm += time.perf_counter() - t0
        if "baseline" in methods:
            t0 = time.perf_counter()
            for k in range(stop - start):
                f = start + k
                det = detect_frame_baseline(
                    chunk[k], vecs[f], origins[f], sigma_px=sigma_px, min_distance_px=min_dist
                )
                _append(tables["baseline"], det, f, vecs[f], origins[f])
            seconds["baseline"] += time.perf_counter() - t0
        for m in methods:  # full buffers go to disk: memory stays flat as the movie grows
            if sum(len(a) for a in tables[m]["frame"]) >= SPILL_ROWS:
                spill = spill or _spill_dir()
                _spill(tables[m], spill, m)
                spilled.add(m)
    if "nn_temporal" in methods:
        seconds["nn_temporal"] = seconds["nn"] + t_hmm
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
        if m in spilled:
            _spill(tables[m], spill, m)
        for key in TABLE_FIELDS:
            if m in spilled:
                arr = da.from_zarr(zarr.open_array(os.path.join(spill, f"{m}_{key}"), mode="r"))
            else:
                arr = np.concatenate([np.zeros(0, _DTYPES[key]), *tables[m][key]])
            ds[f"{m}_{key}"] = (f"{m}_point", arr, {"units": _UNITS.get(key, "1")})
        fit_share = t_fit / nf
        ds.attrs[f"{m}_seconds_per_frame"] = seconds[m] / nf + fit_share
    for key in ("pixel_size", "frame_time", "dose", "electron_dose"):
        ds.attrs[key] = movie.attrs.get(key)
    ds.attrs.update(methods=list(methods), device=str(device), lattice_constant_A=A_WS2)
    if fits:  # mean over the windows
        ds.attrs["temporal_vacancy_model"] = {
            **{k: float(np.mean([w[k] for w in fits])) for k in fits[0]},
            "windows": len(fits),
        }
    return ds
