"""Where things live. Environment variables move them, e.g. for tests that must not touch the repo."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED_DIR = Path(os.environ.get("LATENT_LAB_PRETRAINED", ROOT / "pretrained"))
RUNS_DIR = Path(os.environ.get("LATENT_LAB_RUNS", ROOT / "runs"))
