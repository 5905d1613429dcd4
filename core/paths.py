"""Where things live. Environment variables move them, e.g. for tests that must not touch the repo."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED_DIR = Path(os.environ.get("LATENT_LAB_PRETRAINED", ROOT / "pretrained"))
RUNS_DIR = Path(os.environ.get("LATENT_LAB_RUNS", ROOT / "runs"))
# Exemplars that users chose to share (uploads saved from the app): outside the repo by default,
# so a checkout stays clean and every process of one machine sees the same store.
STORE_DIR = Path(os.environ.get("LATENT_LAB_STORE", Path.home() / ".local" / "share" / "latent-lab" / "store"))
# The app runs one torch thread per process: its models are small, several sessions share the
# machine, and two threads waiting on each other under load made a 5 ms interpolation take 350 ms.
APP_TORCH_THREADS = 1
