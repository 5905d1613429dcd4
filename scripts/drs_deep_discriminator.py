"""Would a deeper, DCGAN-style discriminator make DRS work? (README, DRS.)

The shipped D is two strided convolutions and a linear layer on the 7×7 map. Here D gets a third
strided convolution (7×7 → 4×4) and a 4×4 convolution to the logit, the shape of DCGAN's D; G,
the losses, the optimiser, the held-out split and the calibration are the shipped GAN's. The GAN
is trained from scratch (``core.train``, seed 0, resumable), calibrated at the end as usual, then
DRS is measured as ``evaluate drs`` measures it: per seed, BurnIn over 10,000 samples, the FD of
10,000 plain samples and of 10,000 accepted at the 50/80/95th percentiles (the classifier's
features against the test set), with the acceptance rate.

    .venv/bin/python scripts/drs_deep_discriminator.py --epochs 10 --out runs/gan-deep-d
    .venv/bin/python scripts/drs_deep_discriminator.py --dataset mnist --epochs 40 --out runs/gan-deep-d-mnist

Here (2 CPU cores) the first trains in 20 min and measures in 15; the second in 15 (under load) and 6.

One JSON line per seed; ``scripts/drs_deep_discriminator.jsonl`` holds the runs made on this machine (Fashion-MNIST 10 and 20 epochs, MNIST 40).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere, like the CLI
import core.models.gan as gan_module  # noqa: E402
from core import checkpoint, data, drs, fidelity, train  # noqa: E402


class DeepDiscriminator(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 4, 2, 1), nn.LeakyReLU(0.2),  # (B, w, 14, 14)
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),  # (B, 2w, 7, 7)
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1, bias=False), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2),  # (B, 4w, 4, 4)
            nn.Conv2d(4 * w, 1, 4, 1, 0), nn.Flatten(),  # (B, 1): every pixel reaches the logit
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist", choices=data.DATASETS)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, help="the run's folder (default runs/gan-deep-d-DATASET)")
    parser.add_argument("--seeds", type=int, default=3, help="DRS draws (seeds 0, 1, ...)")
    args = parser.parse_args()
    if args.epochs < 1 or args.seeds < 1:
        parser.error("--epochs and --seeds must be at least 1")
    out = args.out or Path(f"runs/gan-deep-d-{args.dataset}")

    # Every GAN built from here on (fresh, or rebuilt from the run's checkpoint) has the deeper D.
    gan_module.Discriminator = DeepDiscriminator
    try:
        if (out / "checkpoint.pt").exists():  # resuming another dataset's run would train it on this one
            saved = checkpoint.read(out / "checkpoint.pt")["dataset"]
            if saved != args.dataset:
                parser.error(f"{out} holds a run on {saved}, not {args.dataset}: choose another --out")
        path = train.train("gan", args.dataset, train.TrainConfig(epochs=args.epochs), resume=True, out=out)
        gan, payload = checkpoint.load(path)
        yardstick = fidelity.Yardstick.shipped(args.dataset)
    except (ValueError, FileNotFoundError) as exc:  # --out holds another model's run; data or classifier missing
        parser.exit(2, f"drs_deep_discriminator.py: error: {exc}\n")
    for seed in range(args.seeds):
        began = time.perf_counter()
        rng = torch.Generator().manual_seed(seed)
        max_logit = drs.burn_in(gan, drs.BURN_IN_SAMPLES, rng)
        fd_gan = yardstick.fd(gan.sample(10_000, rng))
        row = {"dataset": args.dataset, "epochs": payload["epoch"], "seed": seed, "fd_gan": fd_gan,
               "calibration": {k: v for k, v in payload["history"][-1].items() if k.startswith("calibration")}}
        for percentile in (50.0, 80.0, 95.0):
            kept, rate = drs.rejection_sample(gan, 10_000, max_logit, percentile, rng)
            row[f"p{percentile:g}"] = {"fd_change": yardstick.fd(kept) / fd_gan - 1, "acceptance_rate": rate}
        row["seconds"] = round(time.perf_counter() - began, 1)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
