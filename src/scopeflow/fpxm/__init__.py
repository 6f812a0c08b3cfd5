"""Fourier-ptychographic dark-field X-ray microscopy: Bragg field -> strain -> polarization.

Stages in :mod:`scopeflow.fpxm.stages`; physics in :mod:`~scopeflow.fpxm.forward` (FP model),
:mod:`~scopeflow.fpxm.specimen` (domains, elasticity), :mod:`~scopeflow.fpxm.lgd` (LGD energy).
"""
