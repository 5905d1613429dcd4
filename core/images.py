"""Image grids for pages and reports: torchvision's make_grid, upscaled without blurring."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F
from torchvision.utils import make_grid

from core.data import ImageDataset


def grid(images: torch.Tensor, nrow: int = 8, scale: int = 2, padding: int = 2) -> np.ndarray:
    """(N, 1, H, W) images in [0, 1] -> one uint8 (rows, cols) array, each pixel scale×scale.

    Nearest-neighbour scaling keeps 28×28 pixels crisp; a browser would blur them.
    """
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    big = F.interpolate(images.float().clamp(0, 1), scale_factor=scale, mode="nearest")
    g = make_grid(big, nrow=nrow, padding=padding, pad_value=1.0)  # (3, rows, cols)
    return (g[0] * 255).round().to(torch.uint8).numpy()


def class_examples(ds: ImageDataset, per_class: int = 8) -> torch.Tensor:
    """The first ``per_class`` images of every class, one class after another."""
    picks = [torch.nonzero(ds.labels == c).flatten()[:per_class] for c in range(len(ds.classes))]
    return ds.images[torch.cat(picks)]
