"""Does the constant learning rate hold the long SwAV run back? The official code ends its
schedule with a cosine down to a small fraction of the base rate; the run of ``length_curve.py``
trains at a constant rate. This branches that run at its checkpoint and trains ``--epochs`` more
with the rate falling on a cosine, step by step, from the run's rate to a thousandth of it. The
branch starts from the run's weights, optimiser state and RNG state, so it sees the batches and
crops the run would have seen next, and only the rate differs. It is read out as
``length_curve.py`` reads the run, and the run itself is left as it was.

    LATENT_LAB_RUNS=/tmp/swav-long python experiments/swav/anneal.py --epochs 10 \\
        --out experiments/swav/anneal.json

The branch saves a checkpoint after each epoch (``annealed.pt`` beside the run's), and run again
it goes on from there.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from core import checkpoint, data  # noqa: E402
from core.paths import RUNS_DIR  # noqa: E402
from core.splits import held_out_count  # noqa: E402
from core.train import arithmetic_of_run, git_commit  # noqa: E402
from standard_readouts import read_out  # noqa: E402  (the script beside this one)

FINAL_SHARE = 1e-3  # the rate at the end, as a share of the run's


def cosine_rate(base: float, step: int, total: int) -> float:
    """The rate for ``step`` of ``total``: ``base`` at step 0, falling on a half cosine to
    ``FINAL_SHARE`` of it at the last step."""
    final = base * FINAL_SHARE
    return final + 0.5 * (base - final) * (1 + math.cos(math.pi * step / max(1, total - 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, required=True, help="annealed epochs after the run's last")
    parser.add_argument("--out", type=Path, required=True, help="the read-out, as JSON")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    run = RUNS_DIR / f"swav-{args.dataset}" / "checkpoint.pt"
    branch = run.with_name("annealed.pt")
    model, payload = checkpoint.load(branch if branch.exists() else run)
    anneal = payload.get("anneal") or {"from_epoch": payload["epoch"], "from_steps": payload["step"],
                                       "epochs": args.epochs, "run_commit": payload["commit"],
                                       "commit": git_commit()}
    if anneal["epochs"] != args.epochs:
        sys.exit(f"{branch} anneals over {anneal['epochs']} epochs; delete it to anneal over {args.epochs}")

    optimizer = model.configure_optimizers()["adam"]
    optimizer.load_state_dict(payload["optimizer"]["adam"])
    torch.set_rng_state(payload["rng"])
    images = data.load(args.dataset, "train").images
    # The run's own images, as core.train takes them.
    images = images[: len(images) - held_out_count(model, len(images))]
    images = images[: payload["train_config"].get("limit") or len(images)]
    batch_size = model.config.batch_size
    steps_an_epoch = len(images) // batch_size  # whole batches only, as core.train trains
    total = anneal["epochs"] * steps_an_epoch
    step, seconds, history = payload["step"], payload["seconds"], list(payload["history"])
    base = model.config.lr
    for epoch in range(payload["epoch"], anneal["from_epoch"] + anneal["epochs"]):
        began = time.perf_counter()
        model.train()
        model.on_epoch_start(images)
        order = torch.randperm(len(images))
        losses = []
        for start in range(0, len(images) - batch_size + 1, batch_size):
            for group in optimizer.param_groups:
                group["lr"] = cosine_rate(base, step - anneal["from_steps"], total)
            index = order[start : start + batch_size]
            losses.append(model.train_step(images[index], None, {"adam": optimizer}, epoch=epoch)["loss"])
            step += 1
        seconds += time.perf_counter() - began
        model.eval()
        history.append({"epoch": epoch + 1, "train_loss": sum(losses) / len(losses), "seconds": round(seconds, 1),
                        "lr": optimizer.param_groups[0]["lr"]})
        print(f"epoch {epoch + 1}: loss {history[-1]['train_loss']:.4f}, rate {history[-1]['lr']:.2e}",
              file=sys.stderr)
        checkpoint.save(branch, model, dataset=args.dataset, step=step, epoch=epoch + 1,
                        optimizer={"adam": optimizer.state_dict()}, rng=torch.get_rng_state(),
                        history=history, seconds=seconds, commit=payload["commit"],
                        trained_with=arithmetic_of_run(payload, "cpu"), train_config=payload["train_config"],
                        anneal=anneal)
    model, payload = checkpoint.load(branch)
    record = {**read_out(model, payload, args.dataset), "dataset": args.dataset, "anneal": anneal,
              "final_share": FINAL_SHARE, "curve": payload["history"][-anneal["epochs"]:],
              "command": f"python experiments/swav/anneal.py --dataset {args.dataset} --epochs {args.epochs}"}
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record), file=sys.stderr)


if __name__ == "__main__":
    main()
