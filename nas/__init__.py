"""LiteYOLO-NAS: neural architecture search for lightweight YOLOv8 detectors."""

__version__ = "0.1.0"
