"""Defect detection, classification, tracking and kinetics in STEM movies of WS2.

After Maksov et al., npj Comput. Mater. 5, 12 (2019), doi:10.1038/s41524-019-0152-9.
Stages: :mod:`scopeflow.defects.stages`.
"""
