"""Do a VAE's samples get better when its NLL does? Measured where the NLL plays no part.

For each checkpoint: 10,000 images from its prior, FD against the test set in three feature spaces
(the shipped classifier's, the shipped probe's, SwAV's pooled backbone) and precision and recall
(k = 3) in the probe's. How often the shipped classifier reads a reconstruction of each test image
as another class than the image's; for an Exemplar VAE also one sample around each test image, as
exemplar augmentation draws them: the wrong labels such samples would teach.

    python -m core train vae --dataset fashion-mnist --epochs 1012    # runs/vae-fashion-mnist/
    git show b7c71c8~1:pretrained/exemplar_vae-fashion-mnist.pt > /tmp/exemplar_vae-50-epochs.pt
    python experiments/exemplar_vae/sample_quality.py pretrained/vae-fashion-mnist.pt \\
        runs/vae-fashion-mnist/checkpoint.pt /tmp/exemplar_vae-50-epochs.pt \\
        pretrained/exemplar_vae-fashion-mnist.pt --json experiments/exemplar_vae/sample_quality.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core import augment, checkpoint, data, drs, fidelity  # noqa: E402


def eight_bit(images: torch.Tensor) -> torch.Tensor:
    """As the data are stored: what a sample looks like saved as an image."""
    return torch.round(images * 255) / 255


def measure(path: Path, dataset: str, n: int, spaces: dict, yardstick, test) -> dict:
    model, payload = checkpoint.load(path)
    model.eval()
    if hasattr(model, "prepare_prior"):
        model.prepare_prior(data.load(dataset, "train").images)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        prior = eight_bit(torch.cat([model.sample(1000, generator) for _ in range(0, n, 1000)])[:n])
    result = {"checkpoint": str(path), "family": payload["family"], "epoch": payload["epoch"],
              "prior_samples": len(prior), "fd_classifier": yardstick.fd(prior)}
    for name, space in spaces.items():
        result[f"fd_{name}"] = space.fd(prior)
    result["precision_probe"], result["recall_probe"] = spaces["probe"].precision_recall(prior, k=3)
    result["classifier_error_real"] = augment.error(yardstick.classifier, test.images, test.labels)
    with torch.no_grad():
        reconstructions = eight_bit(torch.cat([model.reconstruct(test.images[i : i + 1000])
                                               for i in range(0, len(test.images), 1000)]))
    result["classifier_error_reconstructions"] = augment.error(yardstick.classifier, reconstructions, test.labels)
    if hasattr(model, "generate_from"):
        around = torch.cat([augment.generated_like(model, test.images[i : i + 1000], generator)
                            for i in range(0, len(test.images), 1000)])
        result["classifier_error_around_test_images"] = augment.error(yardstick.classifier, around, test.labels)
        result["kernel_std"] = float(torch.exp(0.5 * model.kernel_logvar().detach()))
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", type=Path, nargs="+", help="model checkpoints (.pt) to compare")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)

    began = time.perf_counter()
    test = data.load(args.dataset, "test")
    yardstick = fidelity.Yardstick.shipped(args.dataset)
    spaces = drs.independent_spaces(args.dataset, test.images)
    results = [measure(path, args.dataset, args.samples, spaces, yardstick, test) for path in args.checkpoints]
    report = {"dataset": args.dataset, "results": results, "seconds": round(time.perf_counter() - began, 1)}
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
