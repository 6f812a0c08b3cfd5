"""A generic training loop with progress, checkpoints and resume; weights as bytes.

Training is reproducible: :func:`train_loop` runs under :func:`deterministic` (deterministic
torch algorithms, no cuDNN autotuning), so with the same seeds, batches and torch thread count a
retrained model is bit-identical (the thread count changes the order of float reductions, so
compare runs at equal thread counts).
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["deterministic", "train_loop", "state_bytes", "load_state_bytes"]


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Run the enclosed torch code with deterministic algorithms; restore the settings after.

    Sets ``torch.use_deterministic_algorithms(True)`` (on CUDA with ``warn_only``: the bilinear
    up-sampling backward has no deterministic CUDA kernel and would otherwise raise),
    ``cudnn.deterministic`` and no ``cudnn.benchmark`` autotuning, and the cuBLAS workspace that
    deterministic cuBLAS needs.
    """
    old = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    old_env = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old[0], warn_only=old[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old[2], old[3]
        if old_env is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def train_loop(
    model: torch.nn.Module,
    batch_fn: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    steps: int,
    lr: float,
    device: torch.device,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    progress: bool = True,
    desc: str = "train",
) -> list[float]:
    """Adam with cosine learning-rate decay, one batch per step.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place (moved to ``device``).
    batch_fn : callable
        ``batch_fn(step) -> (inputs, targets)``; it should depend only on ``step`` (seeded),
        so a resumed run sees the same batches as an uninterrupted one.
    loss_fn : callable
        ``loss_fn(outputs, targets) -> scalar tensor``.
    steps : int
        Total optimiser steps.
    lr : float
        Initial learning rate.
    device : torch.device
    checkpoint : path, optional
        Written every ``checkpoint_every`` steps and at the end (atomically); when it exists at
        the start, training resumes from it.
    progress : bool
        Show a tqdm progress bar (loss in the postfix).

    Returns
    -------
    list of float
        Loss per step (including the steps before a resume).
    """
    with deterministic():
        model.to(device)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        start, history = 0, []
        path = pathlib.Path(checkpoint) if checkpoint else None
        if path is not None and path.exists():
            state = torch.load(path, map_location=device, weights_only=False)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start, history = int(state["step"]), list(state["history"])
        model.train()
        bar = tqdm(
            range(start, steps),
            initial=start,
            total=steps,
            desc=desc,
            disable=not progress,
            mininterval=2.0,
        )
        for step in bar:
            x, y = batch_fn(step)
            loss = loss_fn(model(x.to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            history.append(float(loss.detach()))
            if step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(history[-20:]):.4f}")
            done = step + 1
            if path is not None and (done % checkpoint_every == 0 or done == steps):
                tmp = path.with_name(path.name + ".tmp")
                torch.save(
                    {
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "step": done,
                        "history": history,
                    },
                    tmp,
                )
                os.replace(tmp, path)
        model.eval()
        return history


def state_bytes(model: torch.nn.Module) -> np.ndarray:
    """Serialise a model's ``state_dict`` (``torch.save``) into a uint8 array for a Zarr store."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    return np.frombuffer(buf.getvalue(), dtype=np.uint8).copy()


def load_state_bytes(model: torch.nn.Module, data: np.ndarray) -> torch.nn.Module:
    """Load weights written by :func:`state_bytes` (tensors only, ``weights_only=True``)."""
    buf = io.BytesIO(np.asarray(data, dtype=np.uint8).tobytes())
    model.load_state_dict(torch.load(buf, map_location="cpu", weights_only=True))
    return model
