"""Can a head on D's features from every depth rank MNIST's fakes better than one on its last map? (docs/drs.md)

With the head on D's last feature map, no choice of head and γ lowered the MNIST probe's FD by more
than 7% on the map of ``drs_selection_space.py``: what DRS can move looked bounded by what that map
tells apart, and by the 320 held-out real images the head is fitted on. This script widens both,
its protocol fixed before it was run:

- **features**: besides the last map (whole 4×4, pooled to 2×2 and 1×1, as shipped), the output of
  each of D's three LeakyReLUs (14×14, 7×7 and 4×4), each average-pooled to 1×1 or to 2×2
  (adaptively) and concatenated: a head that also reads what D's earlier layers saw;
- **fakes**: as many fresh fakes as held-out real images (as shipped), or ten times as many. Fakes
  cost nothing, and a shift of the head's bias does not change what DRS accepts (F subtracts the
  largest logit), so the imbalance needs no correction;
- each feature set × fakes × C in ``LAST_LAYER_PENALTIES``, fitted on the same four fifths of the
  held-out images as the shipped calibration (standardised, scikit-learn's L2 logistic regression);
- the choice as ``drs_selection_space.py`` makes it: one pool of 150,000 fakes, every (head, γ
  percentile 0, 5, ..., 95) runs Algorithm 1 over it, and the point whose first 5,000 accepted
  have the lowest FD against the GAN's own training images in the shipped VAE's features wins;
- the choice is measured as ``evaluate drs`` measures the shipped GAN (``core.drs.study``: 10,000
  samples, three draws, the yardstick, the probe and SwAV's pooled backbone, against the test set).

The map (every point's FD change on the pool in the reported spaces) is printed for reading, never
for choosing.

    .venv/bin/python experiments/drs/drs_depth_heads.py --dataset mnist

``experiments/drs/drs_depth_heads.jsonl`` holds the rows of the runs made on this machine (2 CPU cores).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere, like the CLI
from core import drs  # noqa: E402
from core.drs_calibration import LAST_LAYER_PENALTIES  # noqa: E402
from experiments.drs.selection_map import arguments, emitter, fd_table, map_row, shipped_gan_and_images, study_fields  # noqa: E402

SEED = 0
FAKE_MULTIPLES = (1, 10)
ACTIVATIONS = (1, 4, 7)  # the indices of D's LeakyReLUs in ``Discriminator.body``


def depth_maps(gan, images: torch.Tensor) -> list[torch.Tensor]:
    """The output of each of D's LeakyReLUs, of images in [0, 1]: [(N, w, 14, 14), (N, 2w, 7, 7), (N, 4w, 4, 4)]."""
    gan.eval()
    outs: list[list[torch.Tensor]] = [[] for _ in ACTIVATIONS]
    with torch.no_grad():
        for i in range(0, len(images), 1000):
            x = images[i : i + 1000] * 2 - 1
            for index, layer in enumerate(gan.discriminator.body):
                x = layer(x)
                if index in ACTIVATIONS:
                    outs[ACTIVATIONS.index(index)].append(x)
                if index == ACTIVATIONS[-1]:
                    break
    return [torch.cat(parts).double() for parts in outs]


FEATURE_SETS = {
    "last 4x4": lambda maps: maps[-1].flatten(1),
    "last 2x2": lambda maps: F.avg_pool2d(maps[-1], 2).flatten(1),
    "last 1x1": lambda maps: maps[-1].mean(dim=(2, 3)),
    "depths 1x1": lambda maps: torch.cat([m.mean(dim=(2, 3)) for m in maps], dim=1),
    "depths 2x2": lambda maps: torch.cat([F.adaptive_avg_pool2d(m, 2).flatten(1) for m in maps], dim=1),
}


def features_of(gan, images: torch.Tensor) -> dict[str, torch.Tensor]:
    maps = depth_maps(gan, images)
    return {name: make(maps) for name, make in FEATURE_SETS.items()}


def fit_heads(gan, held_out: torch.Tensor) -> dict[tuple[str, int, float], tuple[torch.Tensor, float]]:
    """{(feature set, fake multiple, C): (weight, bias)} with the standardisation folded in."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = torch.Generator().manual_seed(SEED)
    n_val = len(held_out) // 5
    fit_real = held_out[n_val:]  # the shipped calibration's fitting part; its validation fifth is unused here
    fakes = gan.sample(max(FAKE_MULTIPLES) * len(fit_real), rng)
    real_features, fake_features = features_of(gan, fit_real), features_of(gan, fakes)
    heads = {}
    for name in tqdm(FEATURE_SETS, desc="fitting heads"):
        for multiple in FAKE_MULTIPLES:
            x = torch.cat([real_features[name], fake_features[name][: multiple * len(fit_real)]]).numpy()
            y = np.r_[np.ones(len(fit_real)), np.zeros(multiple * len(fit_real))]
            scaler = StandardScaler().fit(x)
            for c in LAST_LAYER_PENALTIES:
                head = LogisticRegression(C=c, max_iter=3000).fit(scaler.transform(x), y)
                weight = head.coef_[0] / scaler.scale_
                heads[name, multiple, c] = (torch.from_numpy(weight), float(head.intercept_[0] - weight @ scaler.mean_))
    return heads


def head_scores(gan, heads: dict, keys: list, images: torch.Tensor) -> torch.Tensor:
    """(N, len(keys)): each head's logit of the images."""
    features = features_of(gan, images)
    return torch.stack([features[key[0]] @ heads[key][0] + heads[key][1] for key in keys], dim=1)


def main() -> None:
    args = arguments(__doc__, "mnist")
    emit = emitter(args.dataset, args.output)
    gan, held_out, gan_training_images, test_images = shipped_gan_and_images(args.dataset)
    heads = fit_heads(gan, held_out)
    keys = list(heads)
    plain, table = fd_table(gan, args.dataset, lambda images: head_scores(gan, heads, keys, images),
                            gan_training_images, test_images, seed=SEED)

    def label(k: int, p: float) -> str:
        name, multiple, c = keys[k]
        return f"{name} fakes×{multiple} C={c:g} p={p:g}"

    emit(map_row(plain, table, label))

    k, percentile = min(table, key=lambda point: table[point]["selection"])
    key = keys[k]
    emit({"row": "choice", "head": label(k, percentile), "feature_set": key[0], "fake_multiple": key[1],
          "penalty_c": key[2], "gamma_percentile": percentile, "selection_fd": table[k, percentile]["selection"],
          "selection_fd_plain": plain["selection"]})

    # The same G and D body, D's logit read by the chosen head (an experiment's stand-in for a D
    # whose last layer reads every depth).
    refitted = copy.deepcopy(gan)
    refitted.logits = lambda images, batch_size=1000: head_scores(refitted, heads, [key], images)[:, 0]
    result = drs.study(args.dataset, model=refitted, percentile=percentile, progress=True)
    emit({"row": "study", "head": label(k, percentile), "gamma_percentile": percentile, **study_fields(result)})


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
