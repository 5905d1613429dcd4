"""The training images a model holds out: the last ``holdout_fraction`` of them, which its training
never sees (a GAN's discriminator is calibrated on them for rejection sampling). Training, DRS and
its calibration all split the same way, so the split lives below all of them."""

from __future__ import annotations

import torch


def held_out_count(model, n_train: int) -> int:
    return int(n_train * getattr(model.config, "holdout_fraction", 0.0))


def held_out_images(model, images: torch.Tensor) -> torch.Tensor:
    """The last ``holdout_fraction`` of the training images, which training never saw."""
    count = held_out_count(model, len(images))
    if count == 0:
        raise ValueError(f"{model.family} holds out no training images (holdout_fraction is 0)")
    return images[len(images) - count :]
