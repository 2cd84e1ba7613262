"""Training and fine-tuning of torchvision Mask R-CNN models on COCO-format data or generated scenes."""

from pipeline.training.datasets import CocoFrames, SceneSamples, TrainingSample
from pipeline.training.loop import TrainingConfig, train

__all__ = ["CocoFrames", "SceneSamples", "TrainingConfig", "TrainingSample", "train"]
