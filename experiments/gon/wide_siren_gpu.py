"""The implicit GON at the paper's width (SIREN 34-256-256-256-256-1) and its autoencoder, trained
side by side on one GPU for a fixed wall-clock budget.

Four ``python -m core train`` runs at once (GON and autoencoder, Fashion-MNIST and MNIST): each
step is small, so one process leaves the GPU mostly idle between kernel launches, and four fill it.
Every epoch's checkpoint is copied aside, so that each GON can be paired with its autoencoder at
the same epoch (the same number of steps) whichever of the two ran further. The pairs land in
OUT_DIR with a JSON log of every run's learning curve.

    python experiments/gon/wide_siren_gpu.py OUT_DIR --seconds 450
    python experiments/gon/wide_siren_gpu.py OUT_DIR --seconds 240 --dataset fashion-mnist --resume-from DIR

``--resume-from`` continues the runs whose checkpoints DIR holds (as ``NAME.pt``, what OUT_DIR
received): a run in pieces is the same run.

The autoencoder's encoder is widened (``encoder_width=44``) to give it about twice the GON's
parameters, the paper's comparison. The batch is the official code's 64: the CPU recipe halves it
for more steps in its budget, which a GPU does not need.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
SIREN = ["--set", "hidden=256", "--set", "layers=4", "--set", "batch_size=64"]
RUNS = {  # run name -> (family, dataset, epochs at most, extra settings)
    "implicit_gon-fashion-mnist": ("implicit_gon", "fashion-mnist", 1000, []),
    "implicit_gon_ae-fashion-mnist": ("implicit_gon_ae", "fashion-mnist", 1000, ["--set", "encoder_width=44"]),
    "implicit_gon-mnist": ("implicit_gon", "mnist", 200, []),
    "implicit_gon_ae-mnist": ("implicit_gon_ae", "mnist", 200, ["--set", "encoder_width=44"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=450, help="wall-clock budget of the training")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--limit", type=int, help="first N training images (smoke tests)")
    parser.add_argument("--dataset", choices=["fashion-mnist", "mnist"], help="this dataset's pair only")
    parser.add_argument("--resume-from", type=Path, help="continue from the checkpoints NAME.pt in this folder")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a model setting for both runs of each pair, e.g. latent_dim=128")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    snapshots = Path(tempfile.mkdtemp(prefix="wide-siren-"))  # every epoch's checkpoint, per run
    sys.path.insert(0, str(ROOT))
    from core import data, train

    print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}, code sha256 {train.code_digest()}", flush=True)

    for dataset in ("fashion-mnist", "mnist"):  # unpacked once here, not by four processes at once
        images = data.load(dataset, "train").images
        print(f"{dataset}: {len(images)} training images, sha256 "
              f"{hashlib.sha256(images.numpy().tobytes()).hexdigest()[:16]}", flush=True)

    runs = {name: run for name, run in RUNS.items() if args.dataset in (None, run[1])}
    checkpoints = {name: train.run_dir(family, dataset) / "checkpoint.pt" for name, (family, dataset, _, _) in runs.items()}
    taken = [str(path.parent) for path in checkpoints.values() if path.parent.exists()]
    if taken:  # those are the CLI's own run folders: a run there is someone's work
        sys.exit(f"run folders exist already: {', '.join(taken)}; move them away first")
    processes, logs = {}, {}
    for name, (family, dataset, epochs, extra) in runs.items():
        (snapshots / name).mkdir(parents=True)
        command = [sys.executable, "-m", "core", "train", family, "--dataset", dataset, "--epochs", str(epochs),
                   "--device", args.device, "--quiet"]
        if args.resume_from:  # a resumed run keeps its own settings
            checkpoints[name].parent.mkdir(parents=True)
            shutil.copy(args.resume_from / f"{name}.pt", checkpoints[name])
            epoch = torch.load(args.resume_from / f"{name}.pt", map_location="cpu", weights_only=True)["epoch"]
            shutil.copy(args.resume_from / f"{name}.pt", snapshots / name / f"{epoch}.pt")
            command += ["--resume"]
        else:
            command += [*SIREN, *extra, *(part for setting in args.set for part in ("--set", setting))]
        if args.limit:
            command += ["--limit", str(args.limit)]
        logs[name] = open(snapshots / f"{name}.log", "w")
        processes[name] = subprocess.Popen(command, cwd=ROOT, stdout=logs[name], stderr=subprocess.STDOUT)
    began = time.monotonic()
    seen = {name: checkpoints[name].stat().st_mtime if args.resume_from else 0.0 for name in runs}

    def copy_new_checkpoints() -> None:
        for name, path in checkpoints.items():
            if path.exists() and path.stat().st_mtime != seen[name]:
                seen[name] = path.stat().st_mtime
                payload = torch.load(path, map_location="cpu", weights_only=True)
                shutil.copy(path, snapshots / name / f"{payload['epoch']}.pt")
                point = payload["history"][-1]
                print(f"{time.monotonic() - began:5.0f}s {name} epoch {payload['epoch']}: "
                      f"test {point.get('test_recon_mse', float('nan')):.2f}, {point['seconds']:.0f}s", flush=True)

    while time.monotonic() - began < args.seconds and any(p.poll() is None for p in processes.values()):
        for name, process in processes.items():
            if process.poll() not in (None, 0):
                print(f"{name} failed (exit {process.returncode}):", (snapshots / f"{name}.log").read_text()[-3000:])
                for other in processes.values():
                    other.kill()
                return 1
        copy_new_checkpoints()
        time.sleep(0.5)
    for process in processes.values():
        process.terminate()
    for name, process in processes.items():
        if process.wait() not in (0, -15):  # -15: stopped by the budget above
            print(f"{name} failed (exit {process.returncode}):", (snapshots / f"{name}.log").read_text()[-3000:])
            return 1
    copy_new_checkpoints()  # the last epoch of a run that reached its cap between two looks

    summary = {"code_sha256": train.code_digest(), "torch": torch.__version__, "seconds": args.seconds,
               "device": torch.cuda.get_device_name() if torch.cuda.is_available() else args.device, "pairs": {}}
    for dataset in sorted({run[1] for run in runs.values()}):
        gon, ae = f"implicit_gon-{dataset}", f"implicit_gon_ae-{dataset}"
        common = sorted({int(p.stem) for p in (snapshots / gon).glob("*.pt")}
                        & {int(p.stem) for p in (snapshots / ae).glob("*.pt")})
        if not common:
            print(f"{dataset}: no epoch that both runs finished")
            continue
        epoch = common[-1]
        for name in (gon, ae):
            shutil.copy(snapshots / name / f"{epoch}.pt", args.out / f"{name}.pt")
        summary["pairs"][dataset] = {
            "epoch": epoch,
            "curves": {name: torch.load(args.out / f"{name}.pt", map_location="cpu", weights_only=True)["history"] for name in (gon, ae)},
            "epochs_reached": {name: max(int(p.stem) for p in (snapshots / name).glob("*.pt")) for name in (gon, ae)},
        }
        print(f"{dataset}: paired at epoch {epoch}; reached {summary['pairs'][dataset]['epochs_reached']}")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
