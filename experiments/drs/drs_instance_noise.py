"""Does DRS work once D's ratio is a ratio? Calibration with instance noise. (README, DRS.)

The calibrated D tells real from fake almost perfectly (validation loss near 0.06 on
Fashion-MNIST): in D's eyes the two distributions barely overlap, and there log p_data/p_g is not
a ratio but a verdict, so DRS keeps the fakes that look most finished rather than rebalancing
what G over- and under-produces. Instance noise (Sønderby et al. 2016; Arjovsky & Bottou 2017)
makes them overlap: D keeps training on real images and fakes, both with Gaussian noise of std σ
added (``core.drs_calibration.calibrate(noise_std=σ)``), so that its logit estimates the ratio of the
two smoothed densities. A sample is then
scored by the mean logit over ``--views`` noisy copies of it.

Everything else is ``evaluate drs``: the shipped GAN, whose calibrated D this continues from
(the same held-out images, validation split and early stopping as ``core.drs_calibration.calibrate``),
and per seed one ``core.drs.fd_with_and_without`` with the smoothed score: BurnIn over 10,000
samples, the FD of 10,000 plain samples and of 10,000 accepted at the 80th percentile. The noise
levels were fixed before anything was measured.

    .venv/bin/python experiments/drs/drs_instance_noise.py --dataset fashion-mnist   # 15 min here

``experiments/drs/drs_instance_noise.jsonl`` holds the rows of the runs made on this machine (2 CPU cores)
on earlier GANs whose D had the paper's calibration only; docs/drs.md ("Rerunning a record") says
which, and how to rerun them as recorded.
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
from core.drs_calibration import calibrate  # noqa: E402
from core.splits import held_out_images  # noqa: E402

NOISE_STDS = (0.2, 0.5)  # in D's input scale, [-1, 1]: a tenth and a quarter of its range


def smoothed_score(gan, std: float, views: int, seed: int = 0) -> drs.Score:
    """The mean logit over ``views`` noisy copies of each image (noise drawn from its own RNG)."""
    rng = torch.Generator().manual_seed(seed)

    def score(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x = images * 2 - 1
            return torch.stack([gan.discriminator(x + std * torch.randn(x.shape, generator=rng))
                                for _ in range(views)]).mean(0).double()

    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist", choices=data.DATASETS)
    parser.add_argument("--seeds", type=int, default=3, help="DRS draws per noise level (seeds 0, 1, ...)")
    parser.add_argument("--views", type=int, default=4, help="noisy copies a sample's score averages over")
    args = parser.parse_args()
    if args.seeds < 1 or args.views < 1:
        parser.error("--seeds and --views must be at least 1")
    try:
        shipped, _ = pretrained.load("gan", args.dataset)
        yardstick = fidelity.Yardstick.shipped(args.dataset)
    except ValueError as exc:  # a model not shipped (pretrained.ArtifactError)
        parser.exit(2, f"drs_instance_noise.py: error: {exc}\n")
    held_out = held_out_images(shipped, data.load(args.dataset, "train").images)
    for std in NOISE_STDS:
        began = time.perf_counter()
        gan = copy.deepcopy(shipped)
        calibration = calibrate(gan, held_out, noise_std=std, progress=False)
        for seed in range(args.seeds):
            fd_plain, fd_drs, rate = drs.fd_with_and_without(
                gan, yardstick, 10_000, drs.DEFAULT_PERCENTILE, torch.Generator().manual_seed(seed),
                score=smoothed_score(gan, std, args.views, seed))
            print(json.dumps({"dataset": args.dataset, "noise_std": std, "views": args.views, "seed": seed,
                              **calibration, "fd_gan": fd_plain, "fd_change": fd_drs / fd_plain - 1,
                              "acceptance_rate": rate, "seconds": round(time.perf_counter() - began, 1)}),
                  flush=True)


if __name__ == "__main__":
    main()
