"""Several ``python -m core train`` runs side by side on one lent GPU, for a fixed wall-clock budget.

A lent accelerator comes for minutes at a time, so the long runs (the VAEs' hundreds of epochs,
SwAV's) share it: each run is its own process, and when the budget is spent every run is stopped
where it is. A run keeps a checkpoint of its last finished epoch (``checkpoint.save`` replaces
the file atomically), so a stopped run is a run of that many epochs, and ``--resume`` on the same
device continues it. Before the long runs, each is tried for one epoch on 512 images in a scratch
folder, so that a mistake costs seconds of the lease, not all of it.

    python experiments/gpu_runs.py OUT --seconds 540 \\
        "exemplar_vae --dataset fashion-mnist --epochs 2000" \\
        "vae --dataset fashion-mnist --epochs 2000" \\
        "swav --dataset fashion-mnist --epochs 1000 --set coarse_stages=2"

OUT receives each run's checkpoint as MODEL-DATASET.pt and summary.json (epochs reached, seconds,
the sha256 of core/ that ran, as the checkout that travels may carry a stale .git). Ship them from
runs/ on any machine with ``python -m core ship``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["--limit", "512", "--epochs", "1"]


def train_command(run: list[str], device: str, extra: list[str] = ()) -> list[str]:
    """``python -m core train RUN --device DEVICE --quiet``, with ``extra`` replacing any --epochs."""
    if extra:
        kept, skip = [], False
        for part in run:
            if skip:
                skip = False
            elif part == "--epochs":
                skip = True
            else:
                kept.append(part)
        run = kept
    return [sys.executable, "-m", "core", "train", *run, "--device", device, "--quiet", *extra]


def run_name(run: list[str]) -> str:
    return f"{run[0]}-{run[run.index('--dataset') + 1]}"


def smoke_test(runs: list[list[str]], device: str) -> None:
    """One epoch of 512 images per run, one after another, in a scratch runs folder."""
    with tempfile.TemporaryDirectory(prefix="gpu-runs-smoke-") as scratch:
        for run in runs:
            began = time.monotonic()
            done = subprocess.run(train_command(run, device, SMOKE), cwd=ROOT, capture_output=True, text=True,
                                  env={**os.environ, "LATENT_LAB_RUNS": scratch})
            if done.returncode != 0:
                sys.exit(f"smoke test of {run_name(run)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
            print(f"smoke test of {run_name(run)}: {time.monotonic() - began:.0f} s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", nargs="+", help='one quoted train command line each, e.g. "vae --dataset mnist --epochs 500"')
    parser.add_argument("--seconds", type=float, default=540, help="wall-clock budget of the long runs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--no-smoke-test", action="store_true")
    args = parser.parse_args()
    runs = [shlex.split(text) for text in args.runs]
    for run in runs:
        if "--dataset" not in run or "--epochs" not in run:
            sys.exit(f"each run names its --dataset and --epochs: {shlex.join(run)}")
    names = [run_name(run) for run in runs]
    if len(set(names)) != len(names):
        sys.exit(f"two runs would share a run folder: {names}")
    sys.path.insert(0, str(ROOT))
    from core import train

    folders = {name: train.run_dir(*name.split("-", 1)) for name in names}
    taken = [str(folder) for folder in folders.values() if folder.exists()]
    if taken:  # the CLI's own run folders: a run there is someone's work
        sys.exit(f"run folders exist already: {', '.join(taken)}; move them away first")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"code sha256 {train.code_digest()}", flush=True)
    if not args.no_smoke_test:
        smoke_test(runs, args.device)

    logs = {name: open(args.out / f"{name}.log", "w") for name in names}
    processes = {name: subprocess.Popen(train_command(run, args.device), cwd=ROOT, stdout=logs[name],
                                        stderr=subprocess.STDOUT) for name, run in zip(names, runs)}
    began = time.monotonic()
    while time.monotonic() - began < args.seconds and any(p.poll() is None for p in processes.values()):
        time.sleep(1)
    for process in processes.values():
        if process.poll() is None:
            process.terminate()  # between two epochs or in one: the last finished epoch is on disk
    summary = {"code_sha256": train.code_digest(), "device": args.device, "seconds": args.seconds, "runs": {}}
    for name, process in processes.items():
        code = process.wait()
        checkpoint_file = folders[name] / "checkpoint.pt"
        entry = {"command": "python " + shlex.join(train_command(runs[names.index(name)], args.device)[1:]),
                 "exit": code}
        if checkpoint_file.exists():
            import torch

            payload = torch.load(checkpoint_file, map_location="cpu", weights_only=True)
            shutil.copy(checkpoint_file, args.out / f"{name}.pt")
            entry.update(epochs=payload["epoch"], train_seconds=round(payload["seconds"], 1),
                         last=payload["history"][-1] if payload["history"] else None)
        if code not in (0, -15):  # -15: stopped by the budget
            entry["log_tail"] = (args.out / f"{name}.log").read_text()[-2000:]
        summary["runs"][name] = entry
        print(f"{name}: exit {code}, {entry.get('epochs', 0)} epochs", flush=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0 if all(run["exit"] in (0, -15) for run in summary["runs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
