"""Does DRS work when D's last layer is calibrated with regularisation? (README, DRS.)

The paper's calibration keeps training all of D on held-out real images against fresh fakes, with
early stopping on a validation split (``core.drs_calibration.calibrate``). On Fashion-MNIST that D ends
up telling real from fake almost perfectly, and DRS by it makes the FD worse.
``experiments/drs/drs_diagnosis.py`` found that the same D's features are better than its head: a logistic
head refitted on them, standardised and with sklearn's default L2 penalty, moves the FD the right
way. This script tests the calibration built on that, each protocol fixed before it was measured:

- D's trunk, up to its last feature map, is the shipped calibrated D's, frozen;
- the head is one logit, linear in D's last feature map average-pooled to a g×g grid
  (flattened and standardised), so that it folds into D's last layer; the first protocol
  (``--whole-map``, rows in ``drs_head_calibration.jsonl``) fitted the whole map only (g = 4);
  the second (rows in ``drs_head_calibration-pooled.jsonl``) also tries g = 2 and 1, because
  the diagnosis found a 2×2-pooled head better, and lets the validation split below choose g;
- it is fitted by logistic regression on the same split as ``calibrate``: four fifths of the
  held-out real images against as many fresh fakes;
- g and the L2 penalty are chosen together by log loss on the other fifth against as many other
  fresh fakes (the validation split that early stopping uses in ``calibrate``), C from 1e-4,
  1e-3, ..., 1;
- the head is folded into D's last layer (``core.drs_calibration.calibrate_last_layer``), and that D's
  logit replaces D̃ in DRS, measured as ``evaluate drs`` measures it
  (``core.drs.fd_with_and_without``, 80th percentile, seeds 0, 1, 2).

    .venv/bin/python experiments/drs/drs_head_calibration.py --dataset fashion-mnist [--whole-map]

``experiments/drs/drs_head_calibration.jsonl`` and ``-pooled.jsonl`` hold the rows of the runs made on this
machine (2 CPU cores) on earlier GANs whose D had the paper's calibration only;
``drs_head_calibration-two-layer.jsonl`` the first protocol (``--whole-map``) on earlier GANs with
a shallower, two-layer D. docs/drs.md ("Rerunning a record") says which GANs, and how to rerun
them as recorded. The shipped GANs refit D's last layer this way as part of their calibration
(``GANConfig.refit_last_layer``).
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
    parser.add_argument("--seeds", type=int, default=3, help="DRS draws (seeds 0, 1, ...)")
    parser.add_argument("--whole-map", action="store_true",
                        help="the first protocol: a head on D's whole last feature map, no pooling")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    try:
        gan, _ = pretrained.load("gan", args.dataset)
        yardstick = fidelity.Yardstick.shipped(args.dataset)
    except ValueError as exc:  # a model not shipped (pretrained.ArtifactError)
        parser.exit(2, f"drs_head_calibration.py: error: {exc}\n")
    began = time.perf_counter()
    refitted = copy.deepcopy(gan)  # the GAN's samples are the same; only D's last layer changes
    with torch.no_grad():
        side = gan.eval().discriminator.last_feature_map(torch.zeros(1, 1, 28, 28)).shape[-1]
    record = calibrate_last_layer(refitted, held_out_images(gan, data.load(args.dataset, "train").images),
                                  grids=(side,) if args.whole_map else None)
    for seed in range(args.seeds):
        fd_plain, fd_drs, rate = drs.fd_with_and_without(gan, yardstick, 10_000, drs.DEFAULT_PERCENTILE,
                                                         torch.Generator().manual_seed(seed), score=refitted.logits)
        print(json.dumps({"dataset": args.dataset, "seed": seed, **record, "fd_gan": fd_plain,
                          "fd_change": fd_drs / fd_plain - 1, "acceptance_rate": rate,
                          "seconds": round(time.perf_counter() - began, 1)}), flush=True)


if __name__ == "__main__":
    main()
