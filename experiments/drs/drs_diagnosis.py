"""What does the calibrated discriminator rank fakes by, and would a semantic one do better? (README, DRS.)

DRS on the shipped GANs moves the Fréchet distance much less than selection can (the feature-space
reference of ``python -m core evaluate drs``). This script measures five things about why, on the
same fakes of the shipped GAN:

1. How much does the FD change of one draw vary? DRS at the 80th percentile, as ``evaluate drs``
   measures it (BurnIn, 10,000 plain and 10,000 accepted samples), over several seeds: the
   spread any single figure below carries.
2. Is D's ranking of the fakes noise? Fresh discriminators of the same architecture, trained only
   by the calibration (held-out real images against fresh fakes, early stopping), are compared
   with the shipped, calibrated D by rank correlation. High agreement means D's ratio is a
   consistent estimate of something, just not of what the FD measures.
3. What does it track? Rank correlations of each score with the fakes' ink (mean pixel value) and
   with the norm of their classifier features (the FD's space).
4. Would a semantic discriminator that never saw a label do better? The same acceptance rule
   (BurnIn, Algorithm 1 at the 80th percentile), with the ratio fitted by logistic regression
   (``core.drs.feature_ratio``) on SwAV's features of the held-out real images against fresh
   fakes. SwAV has two feature spaces worth trying, and both are reported: its L2-normalised
   embedding (where the prototypes cluster) and its encoder's feature map (the codes the maps
   use). Each is fitted and run once per seed, beside DRS. Unlike the classifier-feature
   reference, neither reads the yardstick; neither is the paper's D.
5. Would recalibrating the GAN's own D help? The same rule, with a new logistic head fitted on
   D's last feature map (after its last LeakyReLU, 4×4; 7×7 in the earlier two-layer D),
   average-pooled to 1×1 or 2×2, or left whole (D's own last layer refitted),
   on the same held-out images against fresh fakes.

    .venv/bin/python experiments/drs/drs_diagnosis.py --dataset fashion-mnist   # one JSON object, 13-19 min here

``experiments/drs/drs_diagnosis.jsonl`` holds one line per dataset from this machine (2 CPU cores) for
earlier GANs with today's D and the paper's calibration only; ``drs_diagnosis-two-layer.jsonl``
the same for earlier GANs with a shallower, two-layer D. docs/drs.md ("Rerunning a record") says
which GANs, and how to rerun each as recorded.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere, like the CLI
from core import data, drs, fidelity, pretrained  # noqa: E402
from core.drs_calibration import calibrate  # noqa: E402
from core.models.gan import Discriminator  # noqa: E402
from core.splits import held_out_images  # noqa: E402


def rho(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    return round(float(spearmanr(np.asarray(a), np.asarray(b)).statistic), 3)


def d_features(gan, grid: int):
    """D's last feature map, average-pooled to ``grid``×``grid``: the features a recalibrated
    head would read."""
    last_map = gan.discriminator.last_feature_map

    def features(images: torch.Tensor) -> torch.Tensor:
        gan.eval()
        with torch.no_grad():
            return torch.cat([F.adaptive_avg_pool2d(last_map(images[i : i + 1000] * 2 - 1), grid).flatten(1)
                              for i in range(0, len(images), 1000)])

    return features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist", choices=data.DATASETS)
    parser.add_argument("--samples", type=int, default=10_000, help="fakes scored (at least 1,000)")
    parser.add_argument("--fresh", type=int, default=2, help="fresh discriminators to compare with the shipped one")
    parser.add_argument("--percentile", type=float, default=drs.DEFAULT_PERCENTILE)
    parser.add_argument("--seeds", type=int, default=3, help="draws of each FD change (seeds 0, 1, ...)")
    args = parser.parse_args()
    if args.samples < 1000:
        parser.error(f"--samples must be at least 1000, got {args.samples}")
    try:
        drs.check_percentile(args.percentile)
        diagnose(args)
    except ValueError as exc:  # a bad percentile, or a model not shipped (pretrained.ArtifactError)
        parser.exit(2, f"drs_diagnosis.py: error: {exc}\n")


def diagnose(args: argparse.Namespace) -> None:
    began = time.perf_counter()

    gan, _ = pretrained.load("gan", args.dataset)
    yardstick = fidelity.Yardstick.shipped(args.dataset)
    classifier = yardstick.classifier
    held_out = held_out_images(gan, data.load(args.dataset, "train").images)
    generator = torch.Generator().manual_seed(0)
    fakes = gan.sample(args.samples, generator)

    reference = drs.feature_ratio(classifier.features, held_out, gan.sample(len(held_out), generator))(fakes)
    scores = {"shipped": gan.logits(fakes)}
    calibrations = {}
    for seed in range(1, args.fresh + 1):
        fresh = copy.deepcopy(gan)
        torch.manual_seed(seed)  # the fresh D's initial weights
        fresh.discriminator = Discriminator(gan.config.width, gan.config.discriminator)
        calibrations[f"fresh{seed}"] = calibrate(fresh, held_out, seed=seed, progress=True)
        scores[f"fresh{seed}"] = fresh.logits(fakes)
    names = list(scores)
    agreement = {f"{a}~{b}": rho(scores[a], scores[b]) for i, a in enumerate(names) for b in names[i + 1 :]}

    ink = fakes.mean((1, 2, 3))
    feature_norm = classifier.features(fakes).norm(dim=1)
    tracks = {name: {"reference": rho(s, reference), "ink": rho(s, ink), "feature_norm": rho(s, feature_norm)}
              for name, s in {**scores, "reference": reference}.items()}

    # Discriminators that read only features (SwAV's, or D's own under a new head), through the same rule as DRS.
    swav, _ = pretrained.load("swav", args.dataset)
    with torch.no_grad():
        last_map_size = gan.discriminator.last_feature_map(fakes[:1] * 2 - 1).shape[-1]  # 4 for the shipped D
    spaces = {"embedding": swav.embed, "encoder": swav.encode,
              **{f"d_pooled_{grid}": d_features(gan, grid) for grid in (1, 2, last_map_size)}}
    changes = {"drs": [], **{space: [] for space in spaces}}
    rates = {name: [] for name in changes}
    head_ranks = {}
    for seed in range(args.seeds):
        rng = torch.Generator().manual_seed(seed)
        fd_plain, fd_drs, rate = drs.fd_with_and_without(gan, yardstick, args.samples, args.percentile, rng)
        changes["drs"].append(round(fd_drs / fd_plain - 1, 4))
        rates["drs"].append(round(rate, 4))
        for space, features in spaces.items():
            score = drs.feature_ratio(features, held_out, gan.sample(len(held_out), rng))
            kept, rate = drs.rejection_sample(gan, args.samples, drs.burn_in(gan, drs.BURN_IN_SAMPLES, rng, score),
                                              args.percentile, rng, score=score)
            changes[space].append(round(yardstick.fd(kept) / fd_plain - 1, 4))
            rates[space].append(round(rate, 4))
            if seed == 0:
                on_fakes = score(fakes)
                head_ranks[space] = {"d": rho(on_fakes, scores["shipped"]), "reference": rho(on_fakes, reference)}

    print(json.dumps({
        "dataset": args.dataset,
        "samples": args.samples,
        "d_agreement": agreement,  # Spearman between discriminators on the same fakes
        "fresh_calibrations": calibrations,
        "rank_correlations": tracks,  # each score against the reference, ink and feature norm
        "gamma_percentile": args.percentile,
        "fd_change_by_seed": changes,  # DRS (D's ratio) and each feature-space discriminator, per seed
        "acceptance_rate_by_seed": rates,
        "rank_correlations_feature_heads": head_ranks,  # seed 0's fit, against D and the reference
        "seconds": round(time.perf_counter() - began, 1),
    }))


if __name__ == "__main__":
    main()
