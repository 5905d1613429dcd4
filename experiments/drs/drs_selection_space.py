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

import copy
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere, like the CLI
from core import drs  # noqa: E402
from core.drs_calibration import fit_last_layer_heads, fold_last_layer_head, head_logits, last_feature_maps  # noqa: E402
from experiments.drs.selection_map import arguments, emitter, fd_table, map_row, shipped_gan_and_images, study_fields  # noqa: E402

SEED = 0


def main() -> None:
    args = arguments(__doc__, "fashion-mnist")
    emit = emitter(args.dataset, args.output)
    gan, held_out, gan_training_images, test_images = shipped_gan_and_images(args.dataset)
    heads = fit_last_layer_heads(gan, held_out, seed=SEED)
    keys = list(heads)
    plain, table = fd_table(gan, args.dataset, lambda images: head_logits([heads[k] for k in keys], last_feature_maps(gan, images)),
                            gan_training_images, test_images, seed=SEED)

    def label(k: int, p: float) -> str:
        g, c = keys[k]
        return f"{g}x{g} C={c:g} p={p:g}"

    emit(map_row(plain, table, label))

    k, percentile = min(table, key=lambda point: table[point]["selection"])
    grid, penalty = keys[k]
    emit({"row": "choice", "pooled_grid": grid, "penalty_c": penalty, "gamma_percentile": percentile,
          "selection_fd": table[k, percentile]["selection"], "selection_fd_plain": plain["selection"]})

    refitted = copy.deepcopy(gan)  # the same G and D body; only D's last layer changes
    fold_last_layer_head(refitted, heads[grid, penalty])
    result = drs.study(args.dataset, model=refitted, percentile=percentile, progress=True)
    emit({"row": "study", "pooled_grid": grid, "penalty_c": penalty, "gamma_percentile": percentile, **study_fields(result)})


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
