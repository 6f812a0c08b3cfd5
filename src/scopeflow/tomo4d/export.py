"""Export for established 3D-ED software (``export``): a PETS2 project and a SHELX .hkl file.

- PETS2 (Palatinus et al., Acta Cryst. B75, 512 (2019), doi:10.1107/S2052520619007534): a
  ``.pts2`` text project (wavelength, pixel size in 1/Å, tilt-axis angle, and an ``imagelist``
  of frame files with their tilt angles) next to one 32-bit TIFF per summed frame, with the
  direct beam moved to the frame centre.
- SHELX HKLF 4 (Sheldrick, Acta Cryst. A64, 112 (2008), doi:10.1107/S0108767307043930): fixed
  format ``(3I4, 2F8.2)`` lines ``h k l I sigma``, intensities scaled to fit, closed by a zero
  line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from scopeflow.optics.wavelength import electron_wavelength
from scopeflow.tomo4d.options import ExportOptions

__all__ = ["export", "write_hkl", "read_hkl", "write_pets2", "read_pets2"]


def write_hkl(path: Path, hkl: np.ndarray, intensity: np.ndarray, sigma: np.ndarray) -> Path:
    """Write an HKLF 4 file; intensities scaled so the largest is 9999 (fits F8.2)."""
    scale = 9999.0 / max(float(np.max(intensity)), 1e-12) if len(intensity) else 1.0
    lines = [
        f"{h:4d}{k:4d}{m:4d}{i * scale:8.2f}{s * scale:8.2f}"
        for (h, k, m), i, s in zip(hkl, intensity, sigma, strict=True)
    ]
    lines.append(f"{0:4d}{0:4d}{0:4d}{0:8.2f}{0:8.2f}")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def read_hkl(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an HKLF 4 file: hkl (n, 3) int, intensity (n,), sigma (n,) (zero line excluded)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        if len(line) < 28:
            continue
        h, k, m = int(line[0:4]), int(line[4:8]), int(line[8:12])
        if h == k == m == 0:
            break
        rows.append((h, k, m, float(line[12:20]), float(line[20:28])))
    a = np.array(rows).reshape(-1, 5)
    return a[:, :3].astype(int), a[:, 3], a[:, 4]


def write_pets2(
    outdir: Path, name: str, frames: np.ndarray, tilt_deg: np.ndarray, attrs: dict
) -> list[Path]:
    """Write ``<name>.pts2`` and ``frames/<name>_NNNN.tif``; returns the written paths."""
    outdir = Path(outdir)
    (outdir / "frames").mkdir(parents=True, exist_ok=True)
    written = []
    lines = [
        f"lambda {electron_wavelength(attrs['beam_energy_eV']) * 10.0:.6f}",
        f"Aperpixel {attrs['k_pixel_inv_A']:.6f}",
        f"phi {attrs.get('tilt_axis_deg', 0.0):.3f}",
        "omega 0.000",
        "geometry continuous",
        "imagelist",
    ]
    for f, t in enumerate(tilt_deg):
        rel = f"frames/{name}_{f + 1:04d}.tif"
        tifffile.imwrite(outdir / rel, np.asarray(frames[f], np.float32))
        written.append(outdir / rel)
        lines.append(f"{rel} {t:.4f} 0.0000")
    lines.append("endimagelist")
    (outdir / f"{name}.pts2").write_text("\n".join(lines) + "\n")
    return [outdir / f"{name}.pts2", *written]


def read_pets2(path: Path) -> dict:
    """Read back a project written by :func:`write_pets2` (keywords, frames, tilt angles)."""
    path = Path(path)
    out: dict = {"files": [], "tilt_deg": []}
    in_list = False
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "imagelist":
            in_list = True
        elif parts[0] == "endimagelist":
            in_list = False
        elif in_list:
            out["files"].append(path.parent / parts[0])
            out["tilt_deg"].append(float(parts[1]))
        else:
            out[parts[0]] = parts[1] if len(parts) > 1 else ""
    out["frames"] = np.array([tifffile.imread(f) for f in out["files"]])
    out["tilt_deg"] = np.array(out["tilt_deg"])
    return out


def export(inputs: list, opts: ExportOptions, outdir: Path) -> list[Path]:
    """Export stage: inputs (frames, index) -> PETS2 project and .hkl in ``outdir``."""
    frames_ds, idx = inputs
    var = f"frames_{opts.variant}"
    if var not in frames_ds:
        raise ValueError(f"export: the frames store has no {var!r}")
    attrs = dict(frames_ds.attrs)
    cell = idx.attrs["cells"].get(idx.attrs["variant"], {})
    attrs["tilt_axis_deg"] = cell.get("axis_deg", attrs.get("tilt_axis_deg", 0.0))
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = write_pets2(outdir, opts.name, frames_ds[var].values, frames_ds["tilt"].values, attrs)
    paths.append(
        write_hkl(
            outdir / f"{opts.name}.hkl",
            idx["hkl"].values,
            idx["intensity"].values,
            idx["sigma"].values,
        )
    )
    return paths
