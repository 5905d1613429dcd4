"""Is a run in progress better than the shipped model yet? A paired NLL check in minutes.

The full measure (`python -m core evaluate exemplar_vae`: 10,000 test images, 1,000 importance
samples, the exact prior over 60k exemplars) takes 15 to 27 minutes of both cores. Per-image NLLs
spread by tens of nats, so a mean over a few hundred images alone says little; but two models'
NLLs on the same images move together, and their difference spreads far less. This scores the
first N test images under both checkpoints and reports the mean difference with its standard
error, and the shipped model's full-set NLL plus that difference as an estimate of the run's.

    python experiments/exemplar_vae/paired_nll.py runs/exemplar_vae-fashion-mnist/checkpoint.pt \\
        --images 500 --samples 1000

Only a guide to when the run is worth the full measure: what ships is the full measure's figure.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core import checkpoint, data, pretrained  # noqa: E402
from core.evaluate import importance_sampled_nll  # noqa: E402


def per_image_nll(model, train_images, x, samples: int, seed: int = 0) -> torch.Tensor:
    model.eval()
    if hasattr(model, "prepare_prior"):
        model.prepare_prior(train_images)
    generator = torch.Generator().manual_seed(seed)
    return torch.cat([importance_sampled_nll(model, x[i : i + 100], samples, generator)
                      for i in range(0, len(x), 100)])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="the run's checkpoint.pt")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args(argv)

    began = time.perf_counter()
    train = data.load(args.dataset, "train")
    x = data.binarize_fixed(data.load(args.dataset, "test").images)[: args.images]
    shipped, entry = pretrained.load("exemplar_vae", args.dataset)
    run, payload = checkpoint.load(args.run)
    with torch.no_grad():
        shipped_nll = per_image_nll(shipped, train.images, x, args.samples)
        run_nll = per_image_nll(run, train.images, x, args.samples)
    difference = run_nll - shipped_nll
    stderr = float(difference.std()) / math.sqrt(len(difference))
    full = entry["metrics"]["nll"]
    print(json.dumps({
        "run_epoch": payload["epoch"], "images": len(x), "samples": args.samples,
        "shipped_nll_subset": round(float(shipped_nll.mean()), 3),
        "run_nll_subset": round(float(run_nll.mean()), 3),
        "difference": round(float(difference.mean()), 3), "difference_stderr": round(stderr, 3),
        "shipped_nll_full": round(full, 3),
        "run_nll_full_estimate": round(full + float(difference.mean()), 3),
        "seconds": round(time.perf_counter() - began, 1),
    }))


if __name__ == "__main__":
    main()
