"""The defect network: a small U-Net on 2x2-binned frames predicting per-pixel classes.

Following Maksov et al., npj Comput. Mater. 5, 12 (2019), doi:10.1038/s41524-019-0152-9, a fully
convolutional encoder-decoder (U-Net, Ronneberger et al. 2015, doi:10.1007/978-3-319-24574-4_28)
maps a frame to per-pixel class probabilities; defects are the centres of mass of the class
blobs. Differences from the paper: the labels are the simulated columns themselves (the seven
classes of :mod:`scopeflow.defects.lattice`, not "breaks the lattice" FFT residuals), the input is
2x2-binned (0.4 Å/px at 0.2 Å/px frames, still ~4.5 px between W and S2 columns) to make a
1024^2 frame cheap on a CPU, and an Anscombe transform with per-frame standardisation makes the
input dose-independent. By default the binned frame is also pixel-unshuffled 2x2 into four
channels (Shi et al. 2016, doi:10.1109/CVPR.2016.207) and the logits shuffled back: the
convolutions run on a 0.8 Å grid, where wider first levels (16, 24, 32, 64 channels) cost half
the time of the plain 8-channel network on the 0.4 Å grid and detect single S vacancies as well
(temporal F1 0.96 on the validation movie); the 8-channel unshuffled network was 3x faster but
lost 0.05 in that F1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from scopeflow.defects.lattice import CLASS_NAMES, DEFECT_CLASSES
from scopeflow.nn import UNet

__all__ = [
    "N_CLASSES",
    "build_model",
    "architecture_widths",
    "prepare",
    "label_map",
    "predict",
    "blobs",
]

N_CLASSES = len(CLASS_NAMES)
#: label disk radius in binned pixels (0.48 Å at 0.2 Å/px, about the probe sigma)
LABEL_RADIUS = 1.2


def build_model(widths: Sequence[int], space_to_depth: int = 1) -> UNet:
    """The defects U-Net: 1 input channel, :data:`N_CLASSES` outputs.

    Parameters
    ----------
    widths : sequence of int
        Channels per level, finest first.
    space_to_depth : int
        Pixel-unshuffle block of the (binned) input, see :class:`~scopeflow.nn.UNet`.
    """
    return UNet(1, N_CLASSES, width=tuple(widths), space_to_depth=space_to_depth)


def architecture_widths(arch: dict) -> list[int]:
    """Channels per level from a model store's ``architecture`` attrs (``widths``, or the
    ``width``/``depth`` pair of stores written before per-level widths)."""
    if "widths" in arch:
        return [int(c) for c in arch["widths"]]
    return [int(arch["width"]) * 2**k for k in range(int(arch["depth"]) + 1)]


def prepare(frames: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Network input from raw count frames.

    Parameters
    ----------
    frames : (batch, row, col) float tensor
        Counts (even sizes not required).
    multiple : int
        The binned frame is padded (reflect) to a multiple of this (the network's
        :attr:`~scopeflow.nn.UNet.multiple`).

    Returns
    -------
    x : (batch, 1, row', col') float32
        ``sqrt(binned + 3/8)`` standardised per frame, padded.
    size : (int, int)
        Binned size before padding.
    """
    x = frames.float()
    ny, nx = (x.shape[-2] // 2) * 2, (x.shape[-1] // 2) * 2
    x = torch.nn.functional.avg_pool2d(x[:, None, :ny, :nx], 2) * 4.0
    x = torch.sqrt(x + 0.375)
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
    x = (x - mean) / std
    m = multiple
    hy, hx = x.shape[-2:]
    py, px = (-hy) % m, (-hx) % m
    if py or px:
        x = torch.nn.functional.pad(x, (0, px, 0, py), mode="reflect")
    return x, (hy, hx)


def label_map(
    row: np.ndarray, col: np.ndarray, cls: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """Per-pixel class labels on the binned grid.

    Parameters
    ----------
    row, col : (n,) float
        Column positions in full-resolution pixels.
    cls : (n,) int
        Class codes.
    shape : (int, int)
        Binned shape.

    Returns
    -------
    (row, col) int64
        Disk of radius :data:`LABEL_RADIUS` binned px around every column (defects drawn last,
        so they win where disks touch), background elsewhere.
    """
    lab = np.zeros(shape, np.int64)
    h = (np.stack([row, col], 1) - 0.5) / 2.0
    r = int(np.ceil(LABEL_RADIUS))
    off = np.arange(-r, r + 1)
    order = np.argsort(np.isin(cls, DEFECT_CLASSES), kind="stable")
    h, cls = h[order], np.asarray(cls)[order]
    rr = np.round(h[:, 0])[:, None, None].astype(int) + off[None, :, None]
    cc = np.round(h[:, 1])[:, None, None].astype(int) + off[None, None, :]
    inside = (rr - h[:, 0, None, None]) ** 2 + (cc - h[:, 1, None, None]) ** 2 <= LABEL_RADIUS**2
    rr, cc = np.broadcast_arrays(rr, cc)
    lab_cls = np.broadcast_to(cls[:, None, None], rr.shape)
    ok = inside & (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
    lab[rr[ok], cc[ok]] = lab_cls[ok]  # later (defect) entries overwrite earlier ones
    return lab


@torch.inference_mode()
def predict(model: UNet, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities and most probable class on the binned grid.

    Parameters
    ----------
    frames : (batch, row, col) tensor on the model's device
        Counts.

    Returns
    -------
    prob : (batch, N_CLASSES, row // 2, col // 2) float32
        Softmax probabilities.
    arg : (batch, row // 2, col // 2) uint8
        Most probable class (the arg-max of the logits, taken in the channels-last layout where
        the classes of a pixel are adjacent in memory).
    """
    x, (hy, hx) = prepare(frames, model.multiple)
    logits = model(x.contiguous(memory_format=torch.channels_last))[..., :hy, :hx]
    arg = logits.argmax(1).to(torch.uint8)
    return torch.softmax(logits, dim=1).contiguous(), arg


def blobs(
    prob: np.ndarray, min_score: tuple[float, ...], arg: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Defect detections from one frame's class probabilities.

    Parameters
    ----------
    prob : (N_CLASSES, row, col) float
        Probabilities on the binned grid.
    min_score : tuple of float
        Smallest mean class probability of a blob kept, per class of ``DEFECT_CLASSES``.
    arg : (row, col) int, optional
        Most probable class per pixel (from :func:`predict`); computed from ``prob`` if absent.

    Returns
    -------
    dict
        ``row, col`` (n,) [full-resolution px, probability-weighted centre of mass],
        ``class`` (n,) int8, ``score`` (n,) float32 (mean probability over the blob).
    """
    if arg is None:
        arg = prob.argmax(0)
    out = {"row": [], "col": [], "class": [], "score": []}
    for c, t in zip(DEFECT_CLASSES, min_score, strict=True):
        lab, n = ndimage.label(arg == c)
        if n == 0:
            continue
        # blob statistics from the (sparse) labelled pixels only: bincount, not full-frame passes
        rr, cc = np.nonzero(lab)
        ids = lab[rr, cc]
        w = prob[c, rr, cc].astype(np.float64)
        wsum = np.bincount(ids, w, n + 1)[1:]
        score = wsum / np.bincount(ids, None, n + 1)[1:]
        keep = score >= t
        out["row"].append((np.bincount(ids, w * rr, n + 1)[1:] / wsum)[keep] * 2 + 0.5)
        out["col"].append((np.bincount(ids, w * cc, n + 1)[1:] / wsum)[keep] * 2 + 0.5)
        out["class"].append(np.full(int(keep.sum()), c, np.int8))
        out["score"].append(score[keep].astype(np.float32))
    if not out["row"]:
        return {
            "row": np.zeros(0),
            "col": np.zeros(0),
            "class": np.zeros(0, np.int8),
            "score": np.zeros(0, np.float32),
        }
    return {k: np.concatenate(v) for k, v in out.items()}
