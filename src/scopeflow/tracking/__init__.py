"""Linking of detections across frames (or tilts): shared by defects and tomo4d."""

from scopeflow.tracking.linking import link, track_purity

__all__ = ["link", "track_purity"]
