"""Multislice CBED patterns of a displaced perovskite cell with abTEM (finite projection).

One "structure" is a 2 x 2 x 2 perovskite super-cell (ABO3, A sites drawn at random from the
A-site composition, so Ba/Sr disorder is real within the cell) in which every Ti is displaced by
``(dx, dy, dz)`` and the O cage by ``-o_ratio`` times that (the counter-displacement keeps the
centre of mass). The super-cell is tiled laterally and along the beam with
:class:`abtem.CrystalPotential`, whose exit planes give the whole thickness series from one run.
``projection="finite"`` is mandatory: with abTEM's default ``"infinite"`` projection a Ti
displacement along the beam (dz) changes nothing in the patterns.

Thermal models
--------------
``"static"``: frozen lattice. ``"debye_waller"``: the potential is built from structure factors
damped by the Debye-Waller factor (:class:`abtem.StructureFactor` ``thermal_sigma``), i.e. the
thermal-average potential with no diffuse scattering. ``"frozen_phonon"``: the incoherent average
over ``n_configs`` random displacement snapshots (:class:`abtem.FrozenPhonons`).

Axis convention: abTEM's ``x`` is the first array axis. ``dx`` is along ``k_row``, ``dy`` along
``k_col``, ``dz`` along the beam (positive = direction of propagation).

Kirkland, *Advanced Computing in Electron Microscopy* (multislice), doi:10.1007/978-1-4419-6533-2;
abTEM: Madsen & Susi, Open Research Europe 1, 24 (2021), doi:10.12688/openreseurope.13015.2.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

__all__ = ["CellSpec", "LATTICE_A", "perovskite_supercell", "cbed_series", "SLICES_PER_CELL"]

log = logging.getLogger(__name__)

#: Cubic (pseudo-cubic) lattice parameters [Å].
LATTICE_A = {"BaSrTiO3": 3.947, "SrTiO3": 3.905, "BaTiO3": 3.992, "PbTiO3": 3.90}
#: A-site species and fractions per material.
A_SITES = {
    "BaSrTiO3": (("Ba", 0.5), ("Sr", 0.5)),
    "SrTiO3": (("Sr", 1.0),),
    "BaTiO3": (("Ba", 1.0),),
    "PbTiO3": (("Pb", 1.0),),
}
#: Room-temperature isotropic rms displacements per species [Å] (thermal_sigma).
THERMAL_SIGMA = {"Ba": 0.080, "Sr": 0.085, "Pb": 0.120, "Ti": 0.070, "O": 0.090}
SLICES_PER_CELL = 4


@dataclass(frozen=True)
class CellSpec:
    """Optical and sampling settings shared by a training set and a scan.

    Attributes
    ----------
    material : str
        Key of :data:`LATTICE_A`.
    energy_eV : float
        Beam energy [eV].
    convergence_mrad : float
        Probe semi-angle [mrad].
    gpts_per_cell : int
        Potential grid points per unit cell edge (sampling ``a / gpts_per_cell``).
    lateral_cells : int
        Lateral tiling (super-cell edge in unit cells; multiple of 2).
    max_angle_mrad : float
        Detector outer angle [mrad]; patterns are cropped to it.
    o_ratio : float
        O counter-displacement as a fraction of the Ti displacement.
    """

    material: str = "BaSrTiO3"
    energy_eV: float = 300e3
    convergence_mrad: float = 10.0
    gpts_per_cell: int = 64
    lateral_cells: int = 4
    max_angle_mrad: float = 120.0
    o_ratio: float = 0.3


def perovskite_supercell(spec: CellSpec, disp_pm, rng: np.random.Generator):
    """2 x 2 x 2 ABO3 super-cell with displaced Ti and O and random A sites.

    Parameters
    ----------
    spec : CellSpec
    disp_pm : (3,) float
        Ti displacement (dx, dy, dz) [pm].
    rng : numpy.random.Generator
        Draws the A-site species.

    Returns
    -------
    ase.Atoms
    """
    from ase import Atoms

    a = LATTICE_A[spec.material]
    d = np.asarray(disp_pm, float) * 0.01  # pm -> Å
    species, fractions = zip(*A_SITES[spec.material], strict=True)
    symbols, pos = [], []
    for i in range(2):
        for j in range(2):
            for k in range(2):
                o = np.array([i, j, k], float)
                symbols.append(str(rng.choice(species, p=fractions)))
                pos.append(o)
                symbols.append("Ti")
                pos.append(o + 0.5 + d / a)
                for f in ((0.5, 0.5, 0.0), (0.5, 0.0, 0.5), (0.0, 0.5, 0.5)):
                    symbols.append("O")
                    pos.append(o + np.array(f) - spec.o_ratio * d / a)
    return Atoms(symbols, scaled_positions=np.array(pos) / 2.0, cell=[2 * a] * 3, pbc=True)


def _potential_unit(atoms, spec: CellSpec, thermal: str, n_configs: int, seed: int):
    import abtem

    a2 = atoms.cell[2, 2]
    gpts = 2 * spec.gpts_per_cell
    dz = a2 / (2 * SLICES_PER_CELL)
    sigmas = {s: THERMAL_SIGMA[s] for s in set(atoms.get_chemical_symbols())}
    if thermal == "static":
        return abtem.Potential(atoms, gpts=gpts, slice_thickness=dz, projection="finite")
    if thermal == "debye_waller":
        g_max = gpts / a2 / 2.0  # Nyquist of the potential grid [1/Å]
        sf = abtem.StructureFactor(atoms, g_max=g_max, thermal_sigma=sigmas, centering="P")
        return sf.get_projected_potential(slice_thickness=dz, gpts=gpts, lazy=False)
    if thermal == "frozen_phonon":
        fp = abtem.FrozenPhonons(atoms, num_configs=n_configs, sigmas=sigmas, seed=seed)
        return abtem.Potential(fp, gpts=gpts, slice_thickness=dz, projection="finite")
    raise ValueError(f"thermal model must be static|debye_waller|frozen_phonon, got {thermal!r}")


def cbed_series(
    spec: CellSpec,
    disp_pm,
    thickness_cells,
    positions_frac,
    *,
    thermal: str = "static",
    tilt_mrad=(0.0, 0.0),
    defocus_A: float = 0.0,
    n_configs: int = 4,
    seed: int = 0,
) -> np.ndarray:
    """CBED patterns of one structure for a thickness series and several probe positions.

    Parameters
    ----------
    spec : CellSpec
    disp_pm : (3,) float
        Ti displacement [pm].
    thickness_cells : sequence of int
        Thicknesses in unit cells (even numbers; the super-cell is 2 cells thick).
    positions_frac : (m, 2) float
        Probe positions in fractions of one unit cell (0.5, 0.5 = Ti column).
    thermal : {"static", "debye_waller", "frozen_phonon"}
    tilt_mrad : (2,) float
        Beam tilt [mrad].
    defocus_A : float
        Probe defocus [Å].
    n_configs : int
        Frozen-phonon configurations (``thermal == "frozen_phonon"`` only).
    seed : int
        A-site draw and phonon seed.

    Returns
    -------
    (n_thickness, m, k, k) float32
        Intensities (fraction of the incident beam per pixel) out to ``spec.max_angle_mrad``;
        the pixel size is ``1 / (lateral_cells * a)`` [1/Å] (see :func:`k_pixel_mrad`).
    """
    import abtem

    rng = np.random.default_rng(seed)
    atoms = perovskite_supercell(spec, disp_pm, rng)
    unit = _potential_unit(atoms, spec, thermal, n_configs, seed)
    cells = np.asarray(thickness_cells, int)
    if np.any(cells % 2) or np.any(cells < 2):
        raise ValueError(f"thickness_cells must be even and >= 2, got {cells.tolist()}")
    reps = spec.lateral_cells // 2
    planes = tuple(int(c) * SLICES_PER_CELL - 1 for c in cells)
    pot = abtem.CrystalPotential(
        unit, repetitions=(reps, reps, int(cells.max()) // 2), exit_planes=planes
    )
    probe = abtem.Probe(
        energy=spec.energy_eV,
        semiangle_cutoff=spec.convergence_mrad,
        defocus=defocus_A,
        tilt=tuple(float(t) for t in tilt_mrad),
    )
    probe.grid.match(pot)
    a = LATTICE_A[spec.material]
    # probe in the middle tile so the periodic wrap is symmetric
    centre = (spec.lateral_cells // 2) * a
    xy = centre + np.asarray(positions_frac, float).reshape(-1, 2) * a
    scan = abtem.CustomScan(xy)
    det = abtem.PixelatedDetector(max_angle=spec.max_angle_mrad)
    out = probe.scan(pot, scan=scan, detectors=det).compute(
        scheduler="synchronous", progress_bar=False
    )
    arr = np.asarray(out.array, np.float32)
    return arr.reshape(len(cells), len(xy), *arr.shape[-2:])


def k_pixel_mrad(spec: CellSpec) -> float:
    """Detector pixel size of :func:`cbed_series` patterns [mrad]."""
    from scopeflow.optics.wavelength import electron_wavelength

    lam_A = electron_wavelength(spec.energy_eV) * 10.0
    return 1e3 * lam_A / (spec.lateral_cells * LATTICE_A[spec.material])
