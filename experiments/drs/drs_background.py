"""Does the calibrated discriminator judge fakes by their faint background? (README, DRS.)

Real Fashion-MNIST backgrounds are exactly 0; a tanh generator's are only close to it. If D
used that, its logits would change when the faint pixels are zeroed. Prints the mean logit of
2,000 fakes before and after, the mean change against the logits' spread, and the correlation.

    .venv/bin/python experiments/drs/drs_background.py [--dataset fashion-mnist]

docs/drs.md quotes it on an earlier GAN whose D had the paper's calibration only ("Rerunning a
record" there says which, and how to rerun it).
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere, like the CLI
from core import pretrained  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--threshold", type=float, default=0.03, help="fake pixels below this are zeroed")
    args = parser.parse_args()
    gan, _ = pretrained.load("gan", args.dataset)
    fakes = gan.sample(2000, torch.Generator().manual_seed(0))
    before = gan.logits(fakes)
    after = gan.logits(torch.where(fakes < args.threshold, torch.zeros_like(fakes), fakes))
    print(f"mean logit {before.mean():.4f} -> {after.mean():.4f} with pixels below {args.threshold} zeroed; "
          f"mean |change| {(after - before).abs().mean():.4f} (the logits' spread across fakes: std "
          f"{before.std():.4f}); "
          f"correlation {torch.corrcoef(torch.stack([before, after]))[0, 1]:.4f}")


if __name__ == "__main__":
    main()
