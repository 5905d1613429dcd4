"""The standard read-outs of a SwAV checkpoint, without the whole ship measurement: 20-NN accuracy on
Fashion-MNIST's test images of the globally pooled backbone and of the projection, with the same
weighted vote as ``SwAV.measure``. The ship step also chooses and scores the app's read-out (the
unpooled map or a grid) and its untrained control, which took the wide network half an hour on two
cores shared with its training run; this takes minutes.

    python experiments/swav/standard_readouts.py runs/swav-fashion-mnist/checkpoint.pt

With ``--recalibrate-batchnorm``, the BatchNorm statistics are first recomputed on the full 28 px
training images (training mixes 12-14 px local crops into the running averages, which a full
image never is), to see whether that mismatch holds the pooled features back.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core import checkpoint, data  # noqa: E402
from core.models.swav import SwAV, cosine_knn_accuracy  # noqa: E402


@torch.no_grad()
def recalibrate_batchnorm(model: SwAV, images: torch.Tensor, batch_size: int = 1000) -> None:
    """Every BatchNorm's running mean and variance, recomputed as the plain average over ``images``."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average, not an exponential one
    model.train()
    for i in range(0, len(images), batch_size):
        model.head(model.encoder(images[i : i + batch_size]))
    model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--recalibrate-batchnorm", action="store_true")
    args = parser.parse_args()
    model, payload = checkpoint.load(args.checkpoint)
    model.eval()
    train, test = data.load(args.dataset, "train"), data.load(args.dataset, "test")
    if args.recalibrate_batchnorm:
        recalibrate_batchnorm(model, train.images)
    result = {
        "epoch": payload.get("epoch"),
        "width": model.config.width,
        "top_stages": model.config.top_stages,
        "coarse_stages": model.config.coarse_stages,
        "batchnorm_recalibrated": args.recalibrate_batchnorm,
        "knn_accuracy_pooled": cosine_knn_accuracy(model.feature_map(train.images, 1), train.labels,
                                                   model.feature_map(test.images, 1), test.labels),
        "knn_accuracy_projection": cosine_knn_accuracy(model.embed(train.images), train.labels,
                                                       model.embed(test.images), test.labels),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
