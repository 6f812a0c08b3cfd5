"""Shared physics: wavelengths, Fourier grids, propagators, transfer functions, pupils."""
