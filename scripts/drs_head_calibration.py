"""Does DRS work when D's last layer is calibrated with regularisation? (README, DRS.)

The paper's calibration keeps training all of D on held-out real images against fresh fakes, with
early stopping on a validation split (``core.models.gan.calibrate``). On Fashion-MNIST that D ends
up telling real from fake almost perfectly, and DRS by it makes the FD worse.
``scripts/drs_diagnosis.py`` found that the same D's features are better than its head: a logistic
head refitted on them, standardised and with sklearn's default L2 penalty, moves the FD the right
way. This script tests one calibration built on that, fixed before it was measured:

- D's trunk, up to its last feature map, is the shipped calibrated D's, frozen;
- the head has D's own last layer's shape: one logit, linear in the whole last feature map
  (flattened and standardised);
- it is fitted by logistic regression on the same split as ``calibrate``: four fifths of the
  held-out real images against as many fresh fakes;
- the L2 penalty is chosen by log loss on the other fifth against as many other fresh fakes (the
  validation split that early stopping uses in ``calibrate``), from C = 1e-4, 1e-3, ..., 1;
- that head's logit replaces D̃ in DRS, measured as ``evaluate drs`` measures it
  (``core.drs.fd_with_and_without``, 80th percentile, seeds 0, 1, 2).

    .venv/bin/python scripts/drs_head_calibration.py --dataset fashion-mnist

``scripts/drs_head_calibration.jsonl`` holds the rows of the runs made on this machine (2 CPU cores)
on the shipped GANs (commit 9b1e76b); ``drs_head_calibration-two-layer.jsonl`` the same on the GANs
with the two-layer D, shipped before them: their checkpoints and manifest entries from commit
12c0367 in a copy of ``pretrained/`` that ``LATENT_LAB_PRETRAINED`` points to.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere, like the CLI
from core import data, drs, fidelity, pretrained  # noqa: E402
from core.train import held_out_images  # noqa: E402

PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # sklearn's C: the inverse of the L2 strength


def last_feature_map(gan):
    """D's features just before its last layer, flattened: (N, 1, 28, 28) in [0, 1] -> (N, F)."""

    def features(images: torch.Tensor) -> np.ndarray:
        gan.eval()
        with torch.no_grad():
            return torch.cat([gan.discriminator.last_feature_map(images[i : i + 1000] * 2 - 1).flatten(1)
                              for i in range(0, len(images), 1000)]).double().numpy()

    return features


def calibrate_head(gan, held_out: torch.Tensor, seed: int = 0) -> tuple[drs.Score, dict]:
    """The head and its record: the C chosen, and the validation log loss at each C."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = last_feature_map(gan)
    rng = torch.Generator().manual_seed(seed)
    n_val = len(held_out) // 5  # calibrate's split
    val_real, fit_real = held_out[:n_val], held_out[n_val:]
    x_fit = np.concatenate([features(fit_real), features(gan.sample(len(fit_real), rng))])
    y_fit = np.r_[np.ones(len(fit_real)), np.zeros(len(fit_real))]
    x_val = np.concatenate([features(val_real), features(gan.sample(n_val, rng))])
    y_val = np.r_[np.ones(n_val), np.zeros(n_val)]
    fits, losses = {}, {}
    for c in PENALTIES:
        fits[c] = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000)).fit(x_fit, y_fit)
        losses[c] = log_loss(y_val, fits[c].predict_proba(x_val)[:, 1])
    chosen = min(losses, key=losses.get)
    head = fits[chosen]

    def score(images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(head.decision_function(features(images)))

    return score, {"penalty_c": chosen, "val_log_loss_by_c": {f"{c:g}": round(v, 4) for c, v in losses.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist", choices=data.DATASETS)
    parser.add_argument("--seeds", type=int, default=3, help="DRS draws (seeds 0, 1, ...)")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    try:
        gan, _ = pretrained.load("gan", args.dataset)
        yardstick = fidelity.Yardstick.shipped(args.dataset)
    except ValueError as exc:  # a model not shipped (pretrained.ArtifactError)
        parser.exit(2, f"drs_head_calibration.py: error: {exc}\n")
    began = time.perf_counter()
    score, record = calibrate_head(gan, held_out_images(gan, data.load(args.dataset, "train").images))
    for seed in range(args.seeds):
        fd_plain, fd_drs, rate = drs.fd_with_and_without(gan, yardstick, 10_000, drs.DEFAULT_PERCENTILE,
                                                         torch.Generator().manual_seed(seed), score=score)
        print(json.dumps({"dataset": args.dataset, "seed": seed, **record, "fd_gan": fd_plain,
                          "fd_change": fd_drs / fd_plain - 1, "acceptance_rate": rate,
                          "seconds": round(time.perf_counter() - began, 1)}), flush=True)


if __name__ == "__main__":
    main()
