"""How far SwAV's own network can go in the standard read-out when it is given the labels: the
encoder of a SwAV config, trained with cross-entropy through one linear layer on its globally
pooled features, then read out exactly as SwAV is (20-NN, the weighted vote, Fashion-MNIST's
test images). Self-supervised features rarely beat supervised ones of the same network, so this
says whether the pooled read-out's goal (0.90) is within the network's reach at all, or whether
the network has to change first.

    python experiments/swav/supervised_ceiling.py --epochs 10
    python experiments/swav/supervised_ceiling.py --epochs 10 --set coarse_stages=2

Training sees the SwAV global crops' augmentation (random resized crops at 0.3-1.0 of the image,
flips, the small brightness and contrast jitter), so that the ceiling is for the same inputs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core import data  # noqa: E402
from core.__main__ import setting  # noqa: E402  (the CLI's own KEY=VALUE reader for --set)
from core.models.swav import SwAV, SwAVConfig, cosine_knn_accuracy, random_crops  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], type=setting, metavar="KEY=VALUE")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    overrides = dict(args.set)
    try:
        config = SwAVConfig(**overrides)
    except (TypeError, ValueError) as exc:  # an unknown field or a refused value
        parser.error(str(exc))
    model = SwAV(config)
    train, test = data.load(args.dataset, "train"), data.load(args.dataset, "test")
    classifier = nn.Linear(model.features_dim, len(train.classes))
    params = [*model.encoder.parameters(), *classifier.parameters()]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    began = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train.images))
        for i in range(0, len(order), config.batch_size):
            idx = order[i : i + config.batch_size]
            views = random_crops(train.images[idx], 1, config.global_size, config.global_scale, config.flip)
            loss = F.cross_entropy(classifier(model.encoder(views)), train.labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch + 1}: last batch loss {loss.item():.3f}", file=sys.stderr)
    model.eval()
    result = {
        "dataset": args.dataset,
        "epochs": args.epochs,
        "seed": args.seed,
        "config": overrides,
        "train_seconds": round(time.perf_counter() - began, 1),
        "knn_accuracy_pooled": cosine_knn_accuracy(model.feature_map(train.images, 1), train.labels,
                                                   model.feature_map(test.images, 1), test.labels),
        "map_size": model.map_size,
        "knn_accuracy_unpooled": cosine_knn_accuracy(model.feature_map(train.images), train.labels,
                                                     model.feature_map(test.images), test.labels),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
