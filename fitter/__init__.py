"""prdlfit: fit a 3D morphable face model to a photo with the Part Re-projection Distance Loss."""
__version__ = "0.1.0"
