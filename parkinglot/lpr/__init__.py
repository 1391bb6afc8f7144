"""Licence-plate recognition: numba kernels find the plate, the easyocr recogniser reads the crop."""
