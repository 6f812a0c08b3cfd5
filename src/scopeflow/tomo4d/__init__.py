"""4D-STEM tomography with object tracking, to a unit cell and an .hkl list.

After Gholam et al., arXiv:2602.09768 (2026). Stages in :mod:`scopeflow.tomo4d.stages`:
simulate|ingest (sparse tilt series) -> track -> reduce -> index -> export / analyze / figures.
"""
