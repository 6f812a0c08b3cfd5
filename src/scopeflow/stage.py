"""The stage contract shared by every technique.

A technique package exposes ``STAGES: dict[str, Stage]`` in ``scopeflow.<technique>.stages``. The
CLI (:mod:`scopeflow.cli`) looks a stage up there, parses its options, opens its input stores
(checking their kinds), calls ``func`` and writes what it returns:

- ``output == "store"``: ``func(inputs, options) -> xarray.Dataset``; written atomically as a Zarr
  store of kind ``kind`` with provenance. If the dataset has ``attrs["metrics"]`` (a flat dict of
  dotted keys -> numbers/strings) and ``--metrics`` is given, they are also written as JSON.
- ``output == "figures"``: ``func(inputs, options, outdir) -> list[pathlib.Path]`` writes PNGs.

``inputs`` is a list of lazily opened datasets in the order of ``Stage.inputs`` (store kinds).

``target`` names the function as ``"package.module:function"`` and is imported only when the stage
runs: every rule is one process, and importing all of a technique's modules (torch, scikit-learn,
matplotlib, abTEM) for a figures job cost 3-5 s per job, ~10 % of the default DAG.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Stage"]


@dataclass(frozen=True)
class Stage:
    """One stage of a technique.

    Attributes
    ----------
    target : str or callable
        The library function doing the work (see module docstring for the signature), or its
        import path ``"package.module:function"``, imported on first use of :attr:`func`.
    options : type
        The options dataclass (fields declared with :func:`scopeflow.options.opt`).
    inputs : tuple of str
        Store kinds expected as inputs, in order (``()`` for simulate/ingest).
    output : {"store", "figures"}
        What the stage writes.
    kind : str
        Store kind written (for ``output == "store"``), e.g. ``"ltem.series"``.
    summary : str
        One line for ``--help``.
    """

    target: Callable | str
    options: type
    inputs: tuple[str, ...]
    output: str
    kind: str
    summary: str

    @property
    def func(self) -> Callable:
        """The stage function (imported from :attr:`target` when that is a path)."""
        if callable(self.target):
            return self.target
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)
