"""Torch device selection shared by every technique."""

from __future__ import annotations

import torch

__all__ = ["select_device"]


def select_device(name: str = "auto") -> torch.device:
    """Pick the torch device.

    Parameters
    ----------
    name : {"auto", "cpu", "cuda"}
        ``"auto"``: CUDA when available, else CPU.

    Raises
    ------
    ValueError
        For an unknown name, or ``"cuda"`` without a CUDA device.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but torch sees no CUDA device")
        return torch.device("cuda")
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {name!r}")
