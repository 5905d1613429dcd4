"""The project's own yardstick: a small CNN classifier per dataset.

Inception weights cannot be downloaded here, and for 28×28 grayscale data a domain classifier is
the usual yardstick anyway. Its penultimate features give a Fréchet distance between sets of
images (``core.fidelity``), and its labels give the per-class shares of generated samples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.models.inference import inference

FEATURES = 128  # width of the penultimate layer, the space the Fréchet distance is measured in


@dataclass
class ClassifierConfig:
    classes: int = 10
    width: int = 32  # channels of the first conv block; the second has twice as many
    dropout: float = 0.3
    batch_size: int = 128
    lr: float = 1e-3
    decay_epoch: int = 10  # from this epoch on, lr / 10: accuracy plateaus near 91.5% before it


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
        nn.MaxPool2d(2),
    )


class LabelClassifier(nn.Module):
    """What every classifier here shares: a ``body`` to penultimate features and a ``head`` to
    class logits, trained with Adam and cross-entropy, lr / 10 from ``config.decay_epoch``."""

    TABLE_COLUMNS = (("test accuracy", "accuracy", "{:.4f}"), ("test images", "test_images", "{}"))
    body: nn.Module
    head: nn.Module

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """The training batch as the network sees it; unchanged unless a family says otherwise."""
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, classes) of images (B, 1, 28, 28) in [0, 1]."""
        return self.head(self.body(x))

    @inference
    def features(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Penultimate activations (N, features), in eval mode, batched so any N fits in memory."""
        return torch.cat([self.body(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])

    @inference
    def predict(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        return torch.cat([self(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])

    # --- training, through core.train.train_family ---
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": torch.optim.Adam(self.parameters(), lr=self.config.lr)}

    def train_step(self, x, y, optimizers, *, epoch: int) -> dict[str, float]:
        for group in optimizers["adam"].param_groups:
            group["lr"] = self.config.lr * (0.1 if epoch >= self.config.decay_epoch else 1.0)
        logits = self(self.augment(x))
        loss = F.cross_entropy(logits, y)
        optimizers["adam"].zero_grad(set_to_none=True)
        loss.backward()
        optimizers["adam"].step()
        return {"loss": loss.item(), "accuracy": (logits.argmax(1) == y).float().mean().item()}

    def curve_point(self, test) -> dict[str, float]:
        return {"test_accuracy": (self.predict(test.images) == test.labels).float().mean().item()}

    def measure(self, dataset: str, *, limit: int | None = None, progress: bool = True) -> dict:
        from core import data

        began = time.perf_counter()
        test = data.load(dataset, "test")
        images, labels = test.images[:limit], test.labels[:limit]
        predicted = self.predict(images)
        per_class = {test.classes[c]: (predicted[labels == c] == c).float().mean().item()
                     for c in range(self.config.classes) if (labels == c).any()}
        return {"dataset": dataset, "test_images": len(labels),
                "accuracy": (predicted == labels).float().mean().item(),
                "per_class_accuracy": per_class, "seconds": round(time.perf_counter() - began, 1)}


class Classifier(LabelClassifier):
    family = "classifier"
    Config = ClassifierConfig

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.body = nn.Sequential(
            conv_block(1, w),  # (B, w, 14, 14)
            conv_block(w, 2 * w),  # (B, 2w, 7, 7)
            nn.Flatten(),
            nn.Dropout(config.dropout),
            nn.Linear(2 * w * 7 * 7, FEATURES), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(FEATURES, config.classes))

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Small random shifts (±2 px): the one augmentation that helps a 28×28 CNN without
        changing what the class looks like."""
        dx, dy = torch.randint(-2, 3, (2,)).tolist()
        return torch.roll(x, shifts=(dy, dx), dims=(2, 3))
