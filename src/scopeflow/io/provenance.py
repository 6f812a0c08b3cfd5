"""Provenance records written into every store's ``attrs["provenance"]``."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import scopeflow

__all__ = ["fingerprint", "git_commit", "make_provenance"]

#: Stores below this many bytes are hashed in full; larger ones by metadata + file sizes.
FULL_HASH_LIMIT = 256 * 2**20


def fingerprint(path: str | os.PathLike) -> dict:
    """Content fingerprint of a file or a store directory.

    Small inputs (< 256 MiB) are hashed in full (SHA-256 over relative paths and bytes). For
    larger stores, hashing every chunk would cost as much as the stage itself, so the hash covers
    every metadata file in full plus each chunk's relative path and size (``method`` says which).

    Returns
    -------
    dict
        ``{"path", "sha256", "bytes", "method"}``.
    """
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    full = total <= FULL_HASH_LIMIT
    h = hashlib.sha256()
    for p in files:
        rel = p.name if p == path else str(p.relative_to(path))
        h.update(rel.encode())
        if full or p.name.endswith(".json"):
            h.update(p.read_bytes())
        else:
            h.update(str(p.stat().st_size).encode())
    return {
        "path": str(path),
        "sha256": h.hexdigest(),
        "bytes": total,
        "method": "content" if full else "metadata+sizes",
    }


def git_commit() -> str | None:
    """Commit of the scopeflow checkout the package runs from (``None`` outside a checkout).

    ``SCOPEFLOW_GIT_COMMIT`` overrides it (e.g. for an installed package on a cluster).
    """
    env = os.environ.get("SCOPEFLOW_GIT_COMMIT")
    if env:
        return env
    here = Path(scopeflow.__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    if out.returncode != 0 or not commit:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout.strip()
    return commit + ("-dirty" if dirty else "")


def make_provenance(
    *,
    technique: str,
    stage: str,
    params: Mapping,
    inputs: Iterable[str | os.PathLike] = (),
    extra: Mapping | None = None,
) -> dict:
    """Provenance dict: version, commit, stage, parameters, input fingerprints, host, time."""
    return {
        "scopeflow_version": scopeflow.__version__,
        "git_commit": git_commit(),
        "technique": technique,
        "stage": stage,
        "rule": f"{technique}_{stage}",
        "parameters": dict(params),
        "inputs": [fingerprint(p) for p in inputs],
        "python": platform.python_version(),
        "host": platform.node(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **dict(extra or {}),
    }
