"""What the DRS experiments that choose D's head and γ in the VAE's features share
(``drs_selection_space.py``, ``drs_depth_heads.py``): one scored pool, the FD of every (head, γ
percentile) on it in every space, and the rows they print.

Every head at every percentile runs Algorithm 1 over the same pool (``core.drs.accept_batch``:
BurnIn, D̃*_M raised online, γ per batch of 1,000, the same uniforms), and its first ``SAMPLES``
accepted are compared with the pool's first ``SAMPLES`` by FD: in the VAE's features against the
GAN's own training images (``selection``, where the choice is made), and in the reported spaces
against the test set (the map, read and never chosen from).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from core import data, drs, fidelity, pretrained
from core.splits import held_out_images

SAMPLES = 5_000  # accepted samples per FD, as the shipped calibration's validation_samples
POOL = drs.VALIDATION_POOL_FACTOR * SAMPLES


def arguments(doc: str, default_dataset: str) -> argparse.Namespace:
    """``--dataset`` and ``--output``, the options every one of these scripts takes."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--dataset", default=default_dataset, choices=data.DATASETS)
    parser.add_argument("--output", type=Path, help="append the rows to this JSON-lines file too")
    return parser.parse_args()


def shipped_gan_and_images(dataset: str):
    """The shipped GAN, the held-out images its heads are fitted on, the images it trained on (the
    selection's reference) and the test images (the map's)."""
    gan, _ = pretrained.load("gan", dataset)
    train_images = data.load(dataset, "train").images
    held_out = held_out_images(gan, train_images)
    return gan, held_out, train_images[: len(train_images) - len(held_out)], data.load(dataset, "test").images


def emitter(dataset: str, output: Path | None) -> Callable[[dict], None]:
    """Print each row as a JSON line (and append it to ``output``), with the seconds since now."""
    began = time.perf_counter()

    def emit(row: dict) -> None:
        row = {"dataset": dataset, "selection": "vae", **row, "seconds": round(time.perf_counter() - began, 1)}
        print(json.dumps(row), flush=True)
        if output:
            with output.open("a") as file:
                file.write(json.dumps(row) + "\n")

    return emit


def fd_table(gan, dataset: str, scores: Callable[[torch.Tensor], torch.Tensor], gan_training_images: torch.Tensor,
             test_images: torch.Tensor, *, seed: int) -> tuple[dict[str, float], dict[tuple[int, float], dict[str, float]]]:
    """The FD without DRS and with every score column k at every percentile p, in every space.

    ``scores(images)`` is (N, K), one column per head. Returns ({space: FD of the plain pool's
    first SAMPLES}, {(k, p): {space: FD}}); a point that accepts fewer than SAMPLES is left out."""
    reported = {"yardstick": fidelity.Yardstick.shipped(dataset), **drs.independent_spaces(dataset, test_images)}
    vae_features = drs.selection_features(dataset)
    vae_reference = fidelity.feature_statistics(vae_features(gan_training_images))  # never the test set

    # One pool, scored once by every head and embedded once in every space.
    generator = torch.Generator().manual_seed(drs.VALIDATION_STREAM + seed)
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
    table = {}
    for k, max_logit in enumerate(tqdm(max_logits, desc="heads")):
        for p in drs.VALIDATION_PERCENTILES:
            batch_max, kept = max_logit, {name: [] for name in spaces}
            for batch_scores, embedded, uniforms in batches:
                accepted, batch_max = drs.accept_batch(batch_scores[:, k], batch_max, p, uniforms)
                for name in spaces:
                    kept[name].append(embedded[name][accepted])
            kept = {name: torch.cat(parts) for name, parts in kept.items()}
            if len(kept["selection"]) < SAMPLES:
                continue
            table[k, p] = {name: fd(name, kept[name]) for name in spaces}
    return plain, table


def map_row(plain: dict[str, float], table: dict, label: Callable[[int, float], str]) -> dict:
    """The map: every point's FD change on the pool in every space, keyed by ``label(k, p)``."""
    return {"row": "map", "samples": SAMPLES, "pool": POOL, "plain_fd": plain,
            "fd_change": {label(k, p): {name: round(fds[name] / plain[name] - 1, 4) for name in fds}
                          for (k, p), fds in table.items()}}


def study_fields(result: dict) -> dict:
    """What a study row keeps of ``core.drs.study``'s result."""
    return {"fd_change_median": result["fd_change_median"], "fd_change_by_draw": result["fd_change_by_draw"],
            "acceptance_rate": result["acceptance_rate"],
            "independent": {name: {"fd_change_median": r["fd_change_median"], "fd_change_by_draw": r["fd_change_by_draw"]}
                            for name, r in result["independent"].items()},
            "precision_recall": {k: v for k, v in result["independent"][drs.PRECISION_RECALL_SPACE].items()
                                 if k.startswith(("precision", "recall"))}}
