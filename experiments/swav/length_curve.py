"""Does SwAV keep learning at lengths two CPU cores can reach? One run, trained in ``--resume``
pieces up to each milestone epoch and read out after each: 20-NN accuracy on the test images of
the globally pooled backbone (the standard protocol), of the unpooled last feature map, and of the
projection; NMI, ARI and the largest cluster's share of the prototype clusters. One JSON line per
milestone goes to ``--out``; milestones already there are skipped, so a stopped curve goes on
where it stopped (the run itself goes on from its last whole epoch).

    LATENT_LAB_RUNS=/tmp/swav-long python experiments/swav/length_curve.py \\
        --milestones 9,20,30,45,60,80,90,100,130,160,200 --set top_stages=2 --out experiments/swav/length-curve.jsonl

Each piece is ``python -m core train swav ...`` exactly as a person would run it (``--resume`` from
the second on), so a run in pieces is the same run as one in one go.
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

from core import checkpoint, train  # noqa: E402
from core.__main__ import setting  # noqa: E402  (the CLI's own KEY=VALUE reader for --set)
from core.paths import RUNS_DIR  # noqa: E402
from experiments.milestones import epoch_list  # noqa: E402
from standard_readouts import read_out  # noqa: E402  (the script beside this one)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--milestones", required=True, type=epoch_list,
                        help="epochs to read the run out at, comma-separated")
    parser.add_argument("--set", action="append", default=[], type=setting, metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, one per milestone")
    args = parser.parse_args()
    done = set()
    if args.out.exists():
        done = {json.loads(line)["epoch"] for line in args.out.read_text().splitlines() if line.strip()}
    run = RUNS_DIR / f"swav-{args.dataset}" / "checkpoint.pt"
    settings = train.set_arguments(dict(args.set))
    for epoch in args.milestones:
        if epoch in done:
            continue
        command = [sys.executable, "-m", "core", "train", "swav", "--dataset", args.dataset,
                   "--epochs", str(epoch), "--quiet", *settings, *(["--resume"] if run.exists() else [])]
        began = time.perf_counter()
        if subprocess.run(command, cwd=ROOT, env=os.environ).returncode:
            sys.exit(f"training to epoch {epoch} stopped (its message is above); nothing recorded for it")
        print(f"epoch {epoch}: trained in {time.perf_counter() - began:.0f} s", file=sys.stderr)
        record = {**read_out(*checkpoint.load(run), args.dataset), "dataset": args.dataset,
                  "settings": dict(args.set), "command": shlex.join(["python", *command[1:]])}
        with args.out.open("a") as out:
            out.write(json.dumps(record) + "\n")
        print(json.dumps(record), file=sys.stderr)


if __name__ == "__main__":
    main()
