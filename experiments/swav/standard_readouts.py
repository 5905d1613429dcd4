"""The standard read-outs of a SwAV checkpoint, without the whole ship measurement: 20-NN accuracy on
Fashion-MNIST's test images of the globally pooled backbone, of the unpooled last feature map and
of the projection, with the same weighted vote as ``SwAV.measure``; and how its prototype clusters
agree with the labels. The ship step also chooses and scores the app's read-out grid and its
untrained control, which took the wide network half an hour on two cores shared with its training
run; this takes minutes.

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


def read_out(model: SwAV, payload: dict, dataset: str) -> dict:
    """The read-outs of ``model`` (see the module docstring), with what its checkpoint ``payload``
    says about the run: its epoch, steps, training time and loss, commit and arithmetic."""
    model.eval()
    train, test = data.load(dataset, "train"), data.load(dataset, "test")

    def knn(features) -> float:
        return cosine_knn_accuracy(features(train.images), train.labels, features(test.images), test.labels)

    last = (payload.get("history") or [{}])[-1]  # a shipped file keeps no training state
    return {
        "epoch": payload.get("epoch"), "steps": payload.get("step"), "train_seconds": payload.get("seconds"),
        "train_loss": last.get("train_loss"), "commit": payload.get("commit"),
        "trained_with": payload.get("trained_with"),  # the arithmetic: kernels, threads, device
        "knn_accuracy_pooled": knn(lambda x: model.feature_map(x, 1)),
        "knn_accuracy_unpooled": knn(model.feature_map),
        "knn_accuracy_projection": knn(model.embed),
        **model.cluster_agreement(test.images, test.labels),
    }


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
    if args.recalibrate_batchnorm:
        recalibrate_batchnorm(model, data.load(args.dataset, "train").images)
    result = {"width": model.config.width, "top_stages": model.config.top_stages,
              "coarse_stages": model.config.coarse_stages, "batchnorm_recalibrated": args.recalibrate_batchnorm,
              **read_out(model, payload, args.dataset)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
