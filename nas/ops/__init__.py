"""Pure tensor functions: box conversions, anchors, IoU."""
