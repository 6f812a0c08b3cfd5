"""Stage ``train``: fit the defect U-Net on freshly simulated frames.

The input movie supplies the calibration (pixel size, dose, probe width, jitter, background;
its own frames and truth are never used, so scoring on it stays honest). Training frames are
drawn from :func:`scopeflow.defects.simulate.simulate_frames` with randomised conditions and
augmented: dose (noise level) drawn log-uniformly in ``dose_range``, zoom (pixel size x0.9-1.1),
background, jitter, probe width, lattice rotation, defect densities, half of the frames with beam
damage (holes, vacancy lines, rotated patches), and random flips / 90-degree rotations per batch.
The weights are stored as one ``uint8`` variable ``weights (byte)``: the bytes of ``torch.save``
of the ``state_dict`` (tensors only), read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch
import xarray as xr

from scopeflow.defects.lattice import CLASS_NAMES
from scopeflow.defects.options import SimulateOptions, TrainOptions
from scopeflow.defects.simulate import simulate_frames
from scopeflow.defects.unet import N_CLASSES, build_model, label_map, prepare
from scopeflow.nn import n_parameters, select_device, state_bytes, train_loop

__all__ = ["calibration", "training_pool", "train_model"]

#: frames per simulated training mini-movie (kinetics are irrelevant to training)
_FRAMES_PER_MOVIE = 4


def calibration(movie: xr.Dataset) -> dict:
    """Imaging conditions a training set must reproduce, from a movie's attributes.

    Raises
    ------
    ValueError
        When the movie lacks the dose (mean counts at a W column peak) or the pixel size.
    """
    attrs = movie.attrs
    for key in ("pixel_size", "dose"):
        if attrs.get(key) is None:
            raise ValueError(
                f"defects train: the input movie has no '{key}' attribute; set it at ingest "
                "(the network is trained on frames simulated at the movie's calibration)"
            )
    sim = attrs.get("simulation", {})
    base = SimulateOptions()
    return {
        "pixel_size": float(attrs["pixel_size"]),
        "dose": float(attrs["dose"]),
        "probe_sigma": float(sim.get("probe_sigma", base.probe_sigma)),
        "jitter": float(sim.get("jitter", base.jitter)),
        "background": float(sim.get("background", base.background)),
    }


def training_pool(cal: dict, opts: TrainOptions, pool: int) -> tuple[np.ndarray, np.ndarray]:
    """Simulate one pool of training frames with labels.

    Parameters
    ----------
    cal : dict
        From :func:`calibration`.
    opts : TrainOptions
    pool : int
        Pool index (seeds the pool: the same index gives the same frames).

    Returns
    -------
    frames : (n, crop, crop) float32
        Counts.
    labels : (n, crop // 2, crop // 2) int64
        Class codes on the binned grid.
    """
    rng = np.random.default_rng([opts.seed, pool])
    n_movies = max(1, opts.pool_frames // _FRAMES_PER_MOVIE)
    frames, labels = [], []
    lo, hi = np.log(opts.dose_range[0]), np.log(opts.dose_range[1])
    for _ in range(n_movies):
        dens = rng.uniform(1.0, 2.0)
        damaged = rng.random() < 0.5
        sim = SimulateOptions(
            shape=(opts.crop, opts.crop),
            n_frames=_FRAMES_PER_MOVIE,
            pixel_size=cal["pixel_size"] * rng.uniform(0.9, 1.1),
            dose=cal["dose"] * float(np.exp(rng.uniform(lo, hi))),
            background=cal["background"] * rng.uniform(0.5, 2.0),
            probe_sigma=cal["probe_sigma"] * rng.uniform(0.85, 1.15),
            jitter=cal["jitter"] * rng.uniform(0.0, 2.0),
            drift=(0.0, 0.0),
            drift_noise=0.1,
            lattice_angle=rng.uniform(0.0, 60.0),
            diffusion=2.0,
            vs_density=0.45 * dens,
            complex_density=0.2 * dens,
            mo_density=0.08 * dens,
            vs2_density=0.05 * dens,
            vw_density=0.2 * dens,  # W vacancies are rare in a movie: over-represent them
            disorder_start=0 if damaged else _FRAMES_PER_MOVIE,
            n_holes=int(rng.integers(0, 2)),
            hole_radius=rng.uniform(3.0, 7.0),
            n_lines=int(rng.integers(0, 3)),
            n_patches=int(rng.integers(1, 3)),
            patch_radius=rng.uniform(5.0, 9.0),
            seed=int(rng.integers(2**31)),
        )
        counts, truth, _ = simulate_frames(sim)
        half = (opts.crop // 2, opts.crop // 2)
        for t in range(_FRAMES_PER_MOVIE):
            m = truth["frame"] == t
            frames.append(counts[t])
            labels.append(label_map(truth["row"][m], truth["col"][m], truth["cls"][m], half))
    return np.stack(frames), np.stack(labels)


def train_model(inputs: list[xr.Dataset], opts: TrainOptions) -> xr.Dataset:
    """Stage ``train``: a ``defects.model`` store.

    Returns
    -------
    xarray.Dataset
        ``weights (byte)`` uint8 (``torch.save`` bytes of the state_dict), ``loss (step)``;
        attrs ``architecture`` (widths, depth, space_to_depth, classes), ``n_parameters``,
        ``calibration``, ``train_seconds``, ``torch_threads``. Training is deterministic
        (:func:`scopeflow.nn.deterministic`): the same options and torch thread count give
        bit-identical weights.
    """
    (movie,) = inputs
    cal = calibration(movie)
    device = select_device(opts.device)
    torch.manual_seed(opts.seed)
    # channels-last layout (weights and inputs): the oneDNN convolutions, ~70 % of a training
    # step, run 10-15 % faster than in the default layout on a CPU (defects U-Net, 4 x 128^2)
    model = build_model(opts.widths, opts.space_to_depth).to(memory_format=torch.channels_last)
    period = max(1, (opts.pool_frames * 3) // opts.batch_size)  # each frame seen ~3x per pool
    cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    weights = torch.ones(N_CLASSES)

    def get_pool(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if k not in cache:
            cache.clear()
            frames, labels = training_pool(cal, opts, k)
            x, _ = prepare(torch.from_numpy(frames), model.multiple)
            cache[k] = (x, torch.from_numpy(labels))
        return cache[k]

    # class weights ~ 1/sqrt(frequency) from the first pool: rare defects count more
    _, lab0 = get_pool(0)
    freq = torch.bincount(lab0.ravel(), minlength=N_CLASSES).double() + 1.0
    freq = freq / freq.sum()
    weights = (1.0 / freq.sqrt()).float()
    weights = weights / (weights * freq.float()).sum()

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        x_all, y_all = get_pool(step // period)
        g = np.random.default_rng([opts.seed, 7, step])
        idx = g.choice(len(x_all), opts.batch_size, replace=len(x_all) < opts.batch_size)
        x, y = x_all[idx].clone(), y_all[idx].clone()
        hy, hx = y.shape[-2:]
        x = x[..., :hy, :hx]
        k = int(g.integers(4))
        x, y = torch.rot90(x, k, (-2, -1)), torch.rot90(y, k, (-2, -1))
        if g.random() < 0.5:
            x, y = torch.flip(x, (-1,)), torch.flip(y, (-1,))
        return x.contiguous(memory_format=torch.channels_last), y.contiguous()

    loss_fn = torch.nn.CrossEntropyLoss(weight=weights.to(device))
    t0 = time.perf_counter()
    history = train_loop(
        model,
        batch,
        loss_fn,
        steps=opts.steps,
        lr=opts.learning_rate,
        device=device,
        checkpoint=opts.checkpoint or None,
        checkpoint_every=opts.checkpoint_every,
        desc="defects train",
    )
    seconds = time.perf_counter() - t0
    data = state_bytes(model)
    return xr.Dataset(
        {
            "weights": ("byte", data, {"units": "1", "format": "torch.save(state_dict) bytes"}),
            "loss": ("step", np.asarray(history, np.float32), {"units": "1"}),
        },
        coords={"step": ("step", np.arange(len(history)), {"units": "1"})},
        attrs={
            "architecture": {
                "name": "UNet",
                "widths": list(opts.widths),
                "depth": len(opts.widths) - 1,
                "space_to_depth": opts.space_to_depth,
                "n_classes": N_CLASSES,
                "class_names": list(CLASS_NAMES),
                "input": "2x2-binned, Anscombe, per-frame standardised",
            },
            "n_parameters": n_parameters(model),
            "calibration": cal,
            "train_seconds": seconds,
            "torch_threads": torch.get_num_threads(),
            "training": dataclasses.asdict(opts),
        },
    )
