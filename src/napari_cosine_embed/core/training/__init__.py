"""Training and fine-tuning the embedding network: data, augmentation and the training loop.

Examples
--------
>>> from napari_cosine_embed.core.checkpoint import EmbeddingModel
>>> from napari_cosine_embed.core.models import ModelConfig
>>> data = from_synthetic(1, seed=0, shape=(48, 48), n_frames=2)
>>> tiny = EmbeddingModel.new(ModelConfig(stacks=1, levels=2, filters=8, embedding_dim=4))
>>> config = TrainConfig(steps=2, batch_size=1, crop=32, device="cpu")
>>> losses = [info["loss"] for info in train(tiny, data, config)]
>>> len(losses)
2
"""

from .augment import AugmentConfig, augment_clip, crop_clip, zoom_window
from .calibrate import (
    DEFAULT_FOREGROUND_THRESHOLD,
    calibrate_foreground,
    iter_calibrate_foreground,
    recommended_threshold,
)
from .data import (
    Batch,
    LabelledSequence,
    TrainingData,
    dsb_held_out,
    from_arrays,
    from_dsb,
    from_pairs,
    from_synthetic,
)
from .engine import FINETUNE_DEFAULTS, TrainConfig, TrainingLoss, evaluate, train_step
from .trainer import TRAIN_STATE_FORMAT, Trainer, finetune, train

__all__ = [
    "DEFAULT_FOREGROUND_THRESHOLD",
    "FINETUNE_DEFAULTS",
    "TRAIN_STATE_FORMAT",
    "AugmentConfig",
    "Batch",
    "LabelledSequence",
    "TrainConfig",
    "Trainer",
    "TrainingData",
    "TrainingLoss",
    "augment_clip",
    "calibrate_foreground",
    "crop_clip",
    "dsb_held_out",
    "evaluate",
    "finetune",
    "from_arrays",
    "from_dsb",
    "from_pairs",
    "from_synthetic",
    "iter_calibrate_foreground",
    "recommended_threshold",
    "train",
    "train_step",
    "zoom_window",
]
