"""Correlative polarization: polar4d (4D-STEM) x fpxm (FP-DFXM) on one specimen."""
