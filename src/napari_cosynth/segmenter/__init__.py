"""The library's nuclei segmentation + classification network (a U-Net with class and distance heads).

It measures alignment (does a generated image show its generated labels?) and is the network of the
downstream experiments (does training on synthetic pairs help?). See docs/segmenter.md.
"""

from .config import SegmenterConfig
from .model import SegmenterNet, latest_checkpoint, list_checkpoints, load_segmenter, save_segmenter
from .predict import predict_dataset, predict_maps, predict_sample, predict_samples
from .score import score_predictions
from .train import SegmenterProgress, train_segmenter

__all__ = [
    "SegmenterConfig", "SegmenterNet", "SegmenterProgress", "latest_checkpoint", "list_checkpoints",
    "load_segmenter", "predict_dataset", "predict_maps", "predict_sample", "predict_samples",
    "save_segmenter", "score_predictions", "train_segmenter",
]
