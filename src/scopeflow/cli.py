"""Command line: ``python -m scopeflow <technique> <stage> --in ... --out ... --params ...``.

Every Snakemake rule is a thin call of this CLI; the same command is usable by hand. It

1. parses ``--params`` (JSON text or ``@file.json``) into the stage's options dataclass, with an
   error naming any unknown key or out-of-range value;
2. sets the thread count for torch, BLAS/OpenMP and dask (``--threads``) and the torch device;
3. opens the input stores lazily, checking their kinds;
4. calls the one library function of the stage;
5. writes the output store atomically with provenance (or the figures directory, atomically),
   and the metrics JSON when asked.

Other commands: ``python -m scopeflow list`` (techniques and stages) and
``python -m scopeflow schema [--check]`` (regenerate / check ``workflow/schemas`` from the options
dataclasses).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import resource
import shutil
import sys
import time
from pathlib import Path

__all__ = ["main", "available_techniques", "load_stages"]

#: Every technique scopeflow knows; those whose package is present are offered.
TECHNIQUES = ("ltem", "fpxm", "defects", "polar4d", "tomo4d", "correlative")
TECHNIQUE_HELP = {
    "ltem": "Lorentz-TEM phase retrieval by automatic differentiation (TIE baseline)",
    "fpxm": "Fourier-ptychographic dark-field X-ray microscopy -> strain -> polarization",
    "defects": "defects in STEM movies of WS2: FCN detection, GMM classes, tracking, kinetics",
    "polar4d": "3D polarization from 4D-STEM by deep learning",
    "tomo4d": "4D-STEM tomography with object tracking to a unit cell",
    "correlative": "one specimen seen by polar4d and fpxm: polarization maps compared on one grid",
}

log = logging.getLogger("scopeflow")


class CLIError(Exception):
    """A user error: reported as one line, exit status 2."""


def available_techniques() -> list[str]:
    """Techniques whose ``scopeflow.<technique>.stages`` module is installed."""
    return [
        t
        for t in TECHNIQUES
        if importlib.util.find_spec(f"scopeflow.{t}") is not None
        and importlib.util.find_spec(f"scopeflow.{t}.stages") is not None
    ]


def load_stages(technique: str) -> dict:
    """The ``STAGES`` registry of a technique."""
    return importlib.import_module(f"scopeflow.{technique}.stages").STAGES


def _bound_heap() -> None:
    """Serve large allocations (>= 1 MiB: frame chunks, network activations) by mmap.

    glibc's adaptive mmap threshold otherwise grows to 32 MiB after the first large free, so
    chunk-sized buffers come from the heap, whose fragmentation lets the peak RSS creep up
    with the number of chunks streamed; mmapped blocks go back to the system on free. Same as
    ``MALLOC_MMAP_THRESHOLD_=1048576``; a no-op off glibc.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        try:
            ctypes.CDLL(name).mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
        except (OSError, AttributeError):  # pragma: no cover - not glibc
            pass


def _set_threads(n: int) -> None:
    """``n`` threads for BLAS/OpenMP, dask and torch.

    torch is not imported here (2-3 s, and most stages never use it): it takes its intra-op
    thread count from ``OMP_NUM_THREADS`` when it is first imported, by the stage function.
    """
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    import dask

    dask.config.set(scheduler="threads", num_workers=n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def _parse_params(text: str | None) -> dict:
    if not text:
        return {}
    try:
        if text.startswith("@"):
            return json.loads(Path(text[1:]).read_text())
        value = json.loads(text)
    except (OSError, json.JSONDecodeError) as err:
        raise CLIError(f"--params: not valid JSON ({err})") from err
    if not isinstance(value, dict):
        raise CLIError("--params: expected a JSON object of stage options")
    return value


def _option_help(options_cls) -> str:
    from scopeflow.options import json_schema

    lines = ["stage options (JSON keys of --params):"]
    for name, sch in json_schema(options_cls)["properties"].items():
        default = sch.get("default", "(see nested)")
        lines.append(f"  {name:24s} {sch.get('description', '')} (default {default!r})")
    return "\n".join(lines)


def _add_technique(sub, tech: str) -> None:
    tp = sub.add_parser(tech, help=TECHNIQUE_HELP.get(tech, tech))
    stages = tp.add_subparsers(dest="stage", metavar="<stage>", required=True)
    for name, stage in load_stages(tech).items():
        sp = stages.add_parser(
            name,
            help=stage.summary,
            description=stage.summary,
            epilog=_option_help(stage.options),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        kinds = ", ".join(stage.inputs) or "none"
        sp.add_argument(
            "--in",
            dest="inputs",
            action="append",
            default=[],
            metavar="STORE",
            help=f"input store(s), in this order: {kinds}",
        )
        what = "store (.zarr)" if stage.output == "store" else "figures directory"
        sp.add_argument("--out", required=True, help=f"output {what}")
        if stage.output == "store":
            sp.add_argument("--metrics", help="also write the stage's metrics as JSON here")
        sp.add_argument("--params", help="stage options as JSON text or @file.json")
        sp.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")


def _build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``only``, just that technique's stages are imported (every
    rule calls the CLI, so not importing the other techniques saves seconds per job)."""
    parser = argparse.ArgumentParser(
        prog="python -m scopeflow",
        description="scopeflow: raw microscopy data to quantitative maps. Run one stage of a "
        "technique on stores, or list techniques/stages, or (re)generate the config schemas.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python -m scopeflow ltem reconstruct --in results/ltem/a/simulate.zarr "
        '--out /tmp/phase.zarr --params \'{"ad": {"max_iter": 100}}\' --threads 1',
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="technique", metavar="<technique>|list|schema")
    sub.add_parser("list", help="list techniques and their stages")
    sch = sub.add_parser("schema", help="write workflow/schemas/*.yaml from the options classes")
    sch.add_argument("--dir", default="workflow/schemas", help="schema directory")
    sch.add_argument("--check", action="store_true", help="fail if the files are out of date")
    for tech in available_techniques():
        if only is None or tech == only:
            _add_technique(sub, tech)
        else:
            sub.add_parser(tech, help=TECHNIQUE_HELP.get(tech, tech))
    return parser


def _write_json_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _json_ready(value):
    """Metrics values -> plain JSON (numpy scalars to Python, NaN to null)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def run_stage(args: argparse.Namespace) -> None:
    """Run one stage as parsed from the command line (see module docstring)."""
    from scopeflow.io import make_provenance, read_store, write_store
    from scopeflow.options import from_dict, to_dict

    stage = load_stages(args.technique)[args.stage]
    where = f"{args.technique}.{args.stage}"
    if args.threads < 1:
        raise CLIError(f"--threads must be >= 1, got {args.threads}")
    _bound_heap()
    _set_threads(args.threads)
    options = from_dict(stage.options, _parse_params(args.params), where=where)
    if len(args.inputs) != len(stage.inputs):
        raise CLIError(
            f"{where}: expects {len(stage.inputs)} input store(s) "
            f"({', '.join(stage.inputs) or '-'}), got {len(args.inputs)}"
        )
    inputs = [read_store(p, k) for p, k in zip(args.inputs, stage.inputs, strict=True)]
    out = Path(args.out)
    log.info("%s: %s -> %s", where, args.inputs or "(no inputs)", out)
    t0, c0 = time.perf_counter(), time.process_time()
    if stage.output == "figures":
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            stage.func(inputs, options, tmp)
            shutil.rmtree(out, ignore_errors=True)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("%s: figures in %s (%.1f s)", where, out, time.perf_counter() - t0)
        return
    ds = stage.func(inputs, options)
    seconds = time.perf_counter() - t0
    extra = {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(time.process_time() - c0, 3),
        "threads": args.threads,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    prov = make_provenance(
        technique=args.technique,
        stage=args.stage,
        params=to_dict(options),
        inputs=args.inputs,
        extra=extra,
    )
    metrics = ds.attrs.get("metrics")
    write_store(ds, out, stage.kind, provenance=prov)
    if getattr(args, "metrics", None):
        payload = dict(_json_ready(metrics or {}))
        payload["provenance"] = {k: prov[k] for k in ("scopeflow_version", "git_commit", "stage")}
        _write_json_atomic(Path(args.metrics), payload)
    log.info("%s: done in %.1f s, peak RSS %.0f MB", where, seconds, extra["peak_rss_mb"])


def _list() -> None:
    for tech in available_techniques():
        print(f"{tech}: {TECHNIQUE_HELP.get(tech, '')}")
        for name, stage in load_stages(tech).items():
            ins = ", ".join(stage.inputs) or "-"
            outk = stage.kind if stage.output == "store" else "figures/*.png"
            print(f"  {name:12s} {ins} -> {outk}: {stage.summary}")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    positional = [a for a in argv if not a.startswith("-")]
    only = positional[0] if positional and positional[0] in TECHNIQUES else None
    parser = _build_parser(only)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from scopeflow.io import IngestError, StoreError
    from scopeflow.options import OptionsError

    try:
        if args.technique is None:
            parser.print_help()
            return 2
        if args.technique == "list":
            _list()
        elif args.technique == "schema":
            from scopeflow.schema import write_schemas

            stale = write_schemas(Path(args.dir), check=args.check)
            if stale and args.check:
                print(f"out of date: {', '.join(map(str, stale))} (run python -m scopeflow schema)")
                return 1
            for path in stale:
                print(f"wrote {path}")
        else:
            run_stage(args)
    except (CLIError, OptionsError, StoreError, IngestError) as err:
        print(f"scopeflow: error: {err}", file=sys.stderr)
        return 2
    return 0
