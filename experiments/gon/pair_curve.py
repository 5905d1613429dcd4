"""Does the conv GON's lead over its autoencoder hold once both curves flatten? The GON and its
autoencoder are trained in ``--resume`` pieces, side by side up to each milestone epoch (the
autoencoder first, then the GON, so both are at the same number of steps), and measured after
each on the whole test set: squared error summed over pixels, and the shipped classifier's
accuracy on each model's reconstructions. One JSON line per milestone goes to ``--out``;
milestones already there are skipped, so a stopped curve goes on where it stopped (each run from
its last whole epoch).

    LATENT_LAB_RUNS=runs/gon-pair python experiments/gon/pair_curve.py --dataset fashion-mnist \\
        --milestones 5,10,15,20,25,30,40,50,60 --set latent_dim=256 --out experiments/gon/pair-curve-fashion-mnist.jsonl

Each piece is ``python -m core train MODEL ...`` exactly as a person would run it (``--resume``
from the second on), so a run in pieces is the same run as one in one go. The Fashion-MNIST
pair's checkpoints are committed in runs/gon-pair/, so the command above goes on from them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from core import checkpoint, pretrained, train  # noqa: E402
from core.__main__ import setting  # noqa: E402  (the CLI's own KEY=VALUE reader for --set)
from core.paths import RUNS_DIR  # noqa: E402
from experiments.milestones import epoch_list  # noqa: E402

MODELS = ("gon_ae", "gon")  # the autoencoder first: a stop between the two leaves the GON behind, not ahead


def train_to(model: str, dataset: str, epoch: int, settings: list[str]) -> str:
    """Trains MODEL's run to EPOCH (a no-op where it is there already); returns the command."""
    run = RUNS_DIR / f"{model}-{dataset}" / "checkpoint.pt"
    command = [sys.executable, "-m", "core", "train", model, "--dataset", dataset, "--epochs", str(epoch),
               "--quiet", *settings, *(["--resume"] if run.exists() else [])]
    began = time.perf_counter()
    if subprocess.run(command, cwd=ROOT, env=os.environ).returncode:
        sys.exit(f"training {model} to epoch {epoch} stopped (its message is above); nothing recorded for it")
    print(f"{model} epoch {epoch}: trained in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    return shlex.join(["python", *command[1:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--milestones", required=True, type=epoch_list,
                        help="epochs to measure both runs at, comma-separated")
    parser.add_argument("--set", action="append", default=[], type=setting, metavar="KEY=VALUE",
                        help="for both runs (the autoencoder adds an encoder to the same decoder)")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, one per milestone")
    args = parser.parse_args()
    done = set()
    if args.out.exists():
        done = {json.loads(line)["epoch"] for line in args.out.read_text().splitlines() if line.strip()}
    settings = train.set_arguments(dict(args.set))
    classifier, _ = pretrained.load("classifier", args.dataset)
    for epoch in args.milestones:
        if epoch in done:
            continue
        commands = {model: train_to(model, args.dataset, epoch, settings) for model in MODELS}
        (ae, ae_state), (gon, gon_state) = (checkpoint.load(RUNS_DIR / f"{m}-{args.dataset}" / "checkpoint.pt")
                                            for m in MODELS)
        measured = gon.measure(args.dataset, progress=False, autoencoder=(ae, ae_state["epoch"]),
                               classifier=classifier)
        record = {"epoch": epoch, "steps": gon_state["step"], "ae_steps": ae_state["step"],
                  "gon_recon_mse": measured["recon_mse"], "ae_recon_mse": measured["ae_recon_mse"],
                  "gon_recon_accuracy": measured["recon_accuracy"],
                  "ae_recon_accuracy": measured["ae_recon_accuracy"],
                  "gon_params": measured["params"], "ae_params": measured["ae_params"],
                  "test_images": measured["test_images"],
                  "gon_train_loss": gon_state["history"][-1]["train_loss"],
                  "ae_train_loss": ae_state["history"][-1]["train_loss"],
                  "commit": gon_state.get("commit"), "ae_commit": ae_state.get("commit"),
                  "train_seconds": {"gon": gon_state["seconds"], "gon_ae": ae_state["seconds"]},
                  "trained_with": gon_state.get("trained_with"),
                  "dataset": args.dataset, "settings": dict(args.set), "commands": commands}
        with args.out.open("a") as out:
            out.write(json.dumps(record) + "\n")
        print(json.dumps(record), file=sys.stderr)


if __name__ == "__main__":
    main()
