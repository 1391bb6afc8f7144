"""Architecture of plate_g2 for easyocr's custom-network loader: easyocr's own generation-2 model."""
from easyocr.model.vgg_model import Model  # noqa: F401  (VGG + 2 BiLSTM + linear, 37 classes here)
