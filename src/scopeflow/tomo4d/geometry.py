"""Tilt geometry: frames, rotations and the Ewald-sphere inversion of detector positions.

Lab frame: x along the scan columns, y along the scan rows, z along the beam. The specimen is
rotated by the goniometer tilt ``theta`` about the in-plane axis ``(cos phi, sin phi, 0)``
(``phi`` = tilt-axis angle from the scan-column axis); a vector fixed in the specimen has lab
coordinates ``R(theta) v``. The detector is aligned with the scan: ``k_col`` along x, ``k_row``
along y. A spot at detector offset ``(k_x, k_y)`` [1/Å] from the direct beam lies on the Ewald
sphere at ``g = (k_x, k_y, sqrt(K^2 - k_x^2 - k_y^2) - K)``, ``K = 1/lambda``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["axis_rotation", "tilt_rotations", "ewald_vectors", "to_specimen"]


def axis_rotation(axis: np.ndarray, angle_rad: float | np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about unit ``axis`` (3,) by ``angle_rad`` (Rodrigues)."""
    u = np.asarray(axis, float) / np.linalg.norm(axis)
    t = np.asarray(angle_rad, float)[..., None, None]
    k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


def tilt_rotations(tilt_deg: np.ndarray, axis_deg: float) -> np.ndarray:
    """Specimen-to-lab rotations (n_tilt, 3, 3) for tilts [deg] about the axis at ``axis_deg``."""
    phi = np.deg2rad(axis_deg)
    return axis_rotation(np.array([np.cos(phi), np.sin(phi), 0.0]), np.deg2rad(tilt_deg))


def ewald_vectors(k_xy: np.ndarray, wavelength_a: float) -> np.ndarray:
    """Lab-frame scattering vectors (n, 3) [1/Å] of detector offsets ``k_xy`` (n, 2) [1/Å]."""
    k = 1.0 / wavelength_a
    kp2 = np.sum(np.asarray(k_xy, float) ** 2, axis=1)
    gz = np.sqrt(k**2 - kp2) - k
    return np.column_stack([k_xy[:, 0], k_xy[:, 1], gz])


def to_specimen(g_lab: np.ndarray, tilt_index: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Rotate lab vectors (n, 3) back to the specimen frame with each one's tilt rotation."""
    return np.einsum("nji,nj->ni", rotations[tilt_index], g_lab)
