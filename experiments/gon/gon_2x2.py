"""GON against its autoencoder on MNIST at equal steps: {latent 32, 128} × {z = −∇, z = −exp(s)·∇
with s learned} for the GON, {32, 128} for the autoencoder (no inner step). docs/gon-vs-autoencoder.md
reads the record.

    python experiments/gon/gon_2x2.py [--epochs 40] [--out experiments/gon/gon-2x2-mnist-40-epochs.json]

Each run trains with ``python -m core train`` into its own runs folder (``LATENT_LAB_RUNS``), resumes
where one exists, and is then measured on the whole MNIST test sample with ``python -m core
evaluate --checkpoint``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from anywhere, like the CLI
RUNS = {  # name: (model, --set options)
    "gon-z32": ("gon", []),
    "gon_ae-z32": ("gon_ae", []),
    "gon-z32-learned-step": ("gon", ["learned_step=true"]),
    "gon-z128": ("gon", ["latent_dim=128"]),
    "gon_ae-z128": ("gon_ae", ["latent_dim=128"]),
    "gon-z128-learned-step": ("gon", ["latent_dim=128", "learned_step=true"]),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "gon-2x2")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "gon" / "gon-2x2-mnist-40-epochs.json")
    args = parser.parse_args()
    from core import checkpoint

    record = {"what": f"GON and its autoencoder on the MNIST sample, {args.epochs} epochs each (equal steps)",
              "runs": {}}
    for name, (model, options) in RUNS.items():
        env = {**os.environ, "LATENT_LAB_RUNS": str(args.runs / name)}
        path = args.runs / name / f"{model}-mnist" / "checkpoint.pt"
        sets = [a for o in options for a in ("--set", o)]
        command = [sys.executable, "-m", "core", "train", model, "--dataset", "mnist", "--epochs", str(args.epochs),
                   *sets, "--quiet", *(["--resume"] if path.exists() else [])]
        subprocess.run(command, cwd=ROOT, env=env, check=True)
        measured = subprocess.run([sys.executable, "-m", "core", "evaluate", model, "--dataset", "mnist",
                                   "--checkpoint", str(path), "--json"], cwd=ROOT, env=env, check=True,
                                  capture_output=True, text=True)
        metrics = json.loads(measured.stdout)
        state = checkpoint.read(path)
        record["runs"][name] = {
            "command": " ".join(["python -m core train", model, "--dataset mnist --epochs", str(args.epochs), *sets]),
            "test_recon_mse": metrics["recon_mse"], "params": metrics["params"], "test_images": metrics["test_images"],
            "commit": state["commit"],  # the code the run trained with
            "train_seconds": state["history"][-1]["seconds"],
            "curve": [{k: round(v, 4) if isinstance(v, float) else v for k, v in point.items()}
                      for point in state["history"]]}
        print(name, f"{metrics['recon_mse']:.3f}", flush=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
