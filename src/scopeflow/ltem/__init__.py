"""Lorentz-TEM phase retrieval: simulation, TIE baseline, AD reconstruction with joint
refinement of the microscope parameters, induction maps and metrics.

Defocus convention: ``defocus > 0`` is overfocus (exit wave propagated downstream).
References: Zhou et al., npj Comput. Mater. 7, 141 (2021), doi:10.1038/s41524-021-00600-x
(AD); Teague, JOSA 73, 1434 (1983), doi:10.1364/JOSA.73.001434 (TIE); Mansuripur,
J. Appl. Phys. 69, 2455 (1991), doi:10.1063/1.348682 (magnetic phase).
"""
