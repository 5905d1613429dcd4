"""Does DRS reach −10% on Fashion-MNIST when D's last layer is chosen by validation FD? (README, DRS.)

The shipped calibration refits D's last layer and chooses its pooling and penalty by validation
log loss (``core.drs_calibration.calibrate_last_layer``). On Fashion-MNIST log loss picks the whole
4×4 map, while a 2×2-pooled head gave the larger FD gain on the test set
(``experiments/drs/drs_head_calibration.py``); choosing that head by hand would be choosing by the test
result. This script chooses without the test set, the protocol fixed before it was run:

- the same 15 heads as ``calibrate_last_layer`` (the whole map, 2×2, 1×1; C from 1e-4 to 1),
  fitted on the same split of the held-out images against fresh fakes;
- each head, at each γ percentile 0, 5, ..., 95, runs DRS over one scored pool of 150,000 fakes
  (``core.drs.validation_fds``), and its first 5,000 accepted are compared by FD, on the
  classifier's features, against the GAN's own training images;
- the (head, percentile) pair with the lowest of those FDs is folded into D's last layer, and that
  D is measured on the test set as ``evaluate drs`` measures it (``core.drs.fd_with_and_without``,
  10,000 samples, seeds 0, 1, 2) at the chosen percentile.

    .venv/bin/python experiments/drs/drs_head_by_fd.py --dataset fashion-mnist

This is ``calibrate_last_layer(..., fd_against=...)``, which GANs run at the end of training
(``GANConfig.refit_last_layer``); the script applies it to a shipped GAN's D and measures it.
``experiments/drs/drs_head_by_fd.jsonl`` holds the rows of the run made on this machine (2 CPU
cores) on an earlier Fashion-MNIST GAN whose last layer had been chosen by log loss (docs/drs.md,
"Rerunning a record"): the first row is the choice with every validation FD, then one row per
test draw.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere, like the CLI
from core import data, drs, fidelity, pretrained  # noqa: E402
from core.drs_calibration import calibrate_last_layer  # noqa: E402
from core.splits import held_out_images  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist", choices=data.DATASETS)
    parser.add_argument("--seeds", type=int, default=3, help="DRS draws on the test set (seeds 0, 1, ...)")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    try:
        gan, _ = pretrained.load("gan", args.dataset)
        yardstick = fidelity.Yardstick.shipped(args.dataset)
    except ValueError as exc:  # a model not shipped (pretrained.ArtifactError)
        parser.exit(2, f"drs_head_by_fd.py: error: {exc}\n")
    began = time.perf_counter()
    train_images = data.load(args.dataset, "train").images
    held_out = held_out_images(gan, train_images)
    refitted = copy.deepcopy(gan)  # the GAN's samples are the same; only D's last layer changes
    refitted.config.validation_samples = 5_000
    record = calibrate_last_layer(refitted, held_out, progress=True, fd_against=(
        yardstick.classifier.features, train_images[: len(train_images) - len(held_out)]))
    grid, penalty, percentile = record["pooled_grid"], record["penalty_c"], record["gamma_percentile"]
    print(json.dumps({"dataset": args.dataset, "pooled_grid": grid, "penalty_c": penalty, "gamma_percentile": percentile,
                      "validation_fd": record["val_fd"][f"{grid}x{grid}"][f"{penalty:g}"][f"{percentile:g}"],
                      "validation_fds": {f"{g} C={c}": fds for g, by_c in record["val_fd"].items() for c, fds in by_c.items()},
                      "seconds": round(time.perf_counter() - began, 1)}), flush=True)
    for seed in range(args.seeds):
        fd_plain, fd_drs, rate = drs.fd_with_and_without(gan, yardstick, 10_000, percentile,
                                                         torch.Generator().manual_seed(seed), score=refitted.logits)
        print(json.dumps({"dataset": args.dataset, "seed": seed, "pooled_grid": grid, "penalty_c": penalty,
                          "gamma_percentile": percentile, "fd_gan": fd_plain, "fd_change": fd_drs / fd_plain - 1,
                          "acceptance_rate": rate, "seconds": round(time.perf_counter() - began, 1)}), flush=True)


if __name__ == "__main__":
    main()
