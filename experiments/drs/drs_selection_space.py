"""Does DRS hold outside its yardstick when D's head and γ are chosen in a space never reported? (docs/drs.md)

Chosen by the FD of DRS's accepted samples in the yardstick classifier's features, D's last-layer
head and γ's percentile lowered that FD and raised others'. This script makes the choice in a
feature space that no figure is reported in, the protocol fixed before it was run, and the one
``core.drs_calibration.after_training`` follows:

- the same 15 heads as the shipped calibration (the whole 4×4 map, 2×2, 1×1; C from 1e-4 to 1),
  fitted on the same split of the held-out images against fresh fakes (seed 0);
- one pool of 150,000 fakes, scored once by every head; each head at each γ percentile 0, 5, ...,
  95 runs Algorithm 1 over it (``core.drs.accept_batch``: BurnIn, D̃*_M raised online, γ per batch
  of 1,000, the same uniforms), and its first 5,000 accepted are compared with the first 5,000 of
  the pool by FD;
- the **selection space** is the shipped VAE's posterior means (``core.drs.selection_features``):
  a model of another family, trained without labels, that plays no part in any reported figure.
  The FD there is against the GAN's own training images, never the test set;
- the (head, percentile) with the lowest selection FD is folded into D's last layer and measured as
  ``evaluate drs`` measures the shipped GAN (``core.drs.study``: 10,000 samples, three draws, the
  yardstick, the probe and SwAV's pooled backbone, all against the test set).

It also prints, for reading and never for choosing, the **map**: every (head, percentile)'s FD
change on the pool in the yardstick, the probe and SwAV, against the test set: roughly what any
choice of head and γ could reach. Roughly, since each point is 5,000 samples against one plain set
of 5,000 (docs/drs.md compares it with the 10,000-sample draws).

    .venv/bin/python experiments/drs/drs_selection_space.py --dataset fashion-mnist

``experiments/drs/drs_selection_space.jsonl`` holds the rows of the runs made on this machine (2 CPU
cores): per dataset, the map, then the choice with its selection FDs, then the study of the choice.
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
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere, like the CLI
from core import data, drs, fidelity, pretrained  # noqa: E402
from core.drs_calibration import fit_last_layer_heads, fold_last_layer_head, head_logits, last_feature_maps  # noqa: E402
from core.splits import held_out_images  # noqa: E402

SAMPLES = 5_000  # accepted samples per FD, as the shipped calibration's validation_samples
POOL = drs.VALIDATION_POOL_FACTOR * SAMPLES
SEED = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist", choices=data.DATASETS)
    parser.add_argument("--output", type=Path, help="append the rows to this JSON-lines file too")
    args = parser.parse_args()
    began = time.perf_counter()

    def emit(row: dict) -> None:
        row = {"dataset": args.dataset, "selection": "vae", **row, "seconds": round(time.perf_counter() - began, 1)}
        print(json.dumps(row), flush=True)
        if args.output:
            with args.output.open("a") as file:
                file.write(json.dumps(row) + "\n")

    gan, _ = pretrained.load("gan", args.dataset)
    train_images = data.load(args.dataset, "train").images
    test_images = data.load(args.dataset, "test").images
    held_out = held_out_images(gan, train_images)
    gan_training_images = train_images[: len(train_images) - len(held_out)]
    heads = fit_last_layer_heads(gan, held_out, seed=SEED)
    keys = list(heads)

    reported = {"yardstick": fidelity.Yardstick.shipped(args.dataset), **drs.independent_spaces(args.dataset, test_images)}
    vae_features = drs.selection_features(args.dataset)
    vae_reference = fidelity.feature_statistics(vae_features(gan_training_images))  # never the test set

    # One pool, scored once by every head and embedded once in every space.
    generator = torch.Generator().manual_seed(drs.VALIDATION_STREAM + SEED)

    def scores(images: torch.Tensor) -> torch.Tensor:
        return head_logits([heads[k] for k in keys], last_feature_maps(gan, images))

    max_logits = scores(gan.sample(drs.BURN_IN_SAMPLES, generator)).max(dim=0).values.tolist()
    batches = []  # (scores, {space: features}, uniforms)
    for start in tqdm(range(0, POOL, 1000), desc="pool", unit="batch"):
        images = gan.sample(1000, generator)
        with torch.no_grad():
            embedded = {name: space.features(images) for name, space in reported.items()}
            embedded["selection"] = vae_features(images)
        batches.append((scores(images), embedded, torch.rand(1000, generator=generator, dtype=torch.float64)))

    def fd(name: str, features: torch.Tensor) -> float:
        stats = fidelity.feature_statistics(features[:SAMPLES])
        return fidelity.frechet_distance(stats, vae_reference if name == "selection" else reported[name].reference)

    spaces = [*reported, "selection"]
    plain = {name: fd(name, torch.cat([embedded[name] for _, embedded, _ in batches[: SAMPLES // 1000]]))
             for name in spaces}  # the pool's first SAMPLES: the GAN without DRS
    table = {}  # (head key, percentile) -> {space: FD of its first SAMPLES accepted}
    for k, key in enumerate(tqdm(keys, desc="heads")):
        for p in drs.VALIDATION_PERCENTILES:
            batch_max, kept = max_logits[k], {name: [] for name in spaces}
            for batch_scores, embedded, uniforms in batches:
                accepted, batch_max = drs.accept_batch(batch_scores[:, k], batch_max, p, uniforms)
                for name in spaces:
                    kept[name].append(embedded[name][accepted])
            kept = {name: torch.cat(parts) for name, parts in kept.items()}
            if len(kept["selection"]) < SAMPLES:
                continue
            table[key, p] = {name: fd(name, kept[name]) for name in spaces}
    emit({"row": "map", "samples": SAMPLES, "pool": POOL, "plain_fd": plain,
          "fd_change": {f"{g}x{g} C={c:g} p={p:g}": {name: round(fds[name] / plain[name] - 1, 4) for name in spaces}
                        for ((g, c), p), fds in table.items()}})

    (grid, penalty), percentile = min(table, key=lambda point: table[point]["selection"])
    chosen = table[(grid, penalty), percentile]
    emit({"row": "choice", "pooled_grid": grid, "penalty_c": penalty, "gamma_percentile": percentile,
          "selection_fd": chosen["selection"], "selection_fd_plain": plain["selection"]})

    refitted = copy.deepcopy(gan)  # the same G and D body; only D's last layer changes
    fold_last_layer_head(refitted, heads[grid, penalty])
    result = drs.study(args.dataset, model=refitted, percentile=percentile, progress=True)
    emit({"row": "study", "pooled_grid": grid, "penalty_c": penalty, "gamma_percentile": percentile,
          "fd_change_median": result["fd_change_median"], "fd_change_by_draw": result["fd_change_by_draw"],
          "acceptance_rate": result["acceptance_rate"],
          "independent": {name: {"fd_change_median": r["fd_change_median"], "fd_change_by_draw": r["fd_change_by_draw"]}
                          for name, r in result["independent"].items()},
          "precision_recall": {k: v for k, v in result["independent"][drs.PRECISION_RECALL_SPACE].items()
                               if k.startswith(("precision", "recall"))}})


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
