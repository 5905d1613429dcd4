"""Checkpoint files: a state_dict with the model's config, training step, and measured metrics.

Everything in a checkpoint is tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``: no pickled code runs on load.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core import models


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or does not fit its model."""


def save(path: str | Path, model: nn.Module, *, dataset: str, step: int, epoch: int,
         metrics: dict[str, Any] | None = None, **extra: Any) -> None:
    """Write atomically, so an interrupted save never leaves a half-written checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "family": model.family,
        "config": models.config_dict(model),
        "dataset": dataset,
        "state_dict": model.state_dict(),
        "step": step,
        "epoch": epoch,
        "metrics": dict(metrics or {}),
        **extra,
    }
    tmp = path.with_name(path.name + ".partial")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def read(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is missing")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a checkpoint: {exc}") from exc
    for key in ("family", "config", "state_dict", "step"):
        if not isinstance(payload, dict) or key not in payload:
            raise CheckpointError(f"checkpoint {path} has no {key!r}: not a Latent Lab checkpoint")
    return payload


def build_model(payload: dict[str, Any], path: str | Path = "checkpoint") -> nn.Module:
    """The model a checkpoint describes, with its weights (strict key match), in eval mode."""
    model = models.build(payload["family"], {**models.legacy_config(payload["family"]), **payload["config"]})
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit model {payload['family']}: {exc}") from exc
    return model.eval()


def load(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    payload = read(path)
    return build_model(payload, path), payload
