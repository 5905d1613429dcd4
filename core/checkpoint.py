"""Checkpoint files: a state_dict with the model's config, training step, and measured metrics.

Everything in a checkpoint is tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``: no pickled code runs on load.
"""

from __future__ import annotations

import os
import pickle
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
    except Exception as exc:  # torch's messages run to many lines and advise weights_only=False
        raise CheckpointError(f"checkpoint {path} {_why_unreadable(exc)}") from None
    for key in ("family", "config", "state_dict", "step"):
        if not isinstance(payload, dict) or key not in payload:
            raise CheckpointError(f"checkpoint {path} has no {key!r}: not a Latent Lab checkpoint")
    return payload


def _why_unreadable(exc: Exception) -> str:
    """torch.load's failure in one line, without its advice to load unsafely."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) and "Unsupported global" in text:
        return ("holds Python objects besides weights, so it was not loaded "
                "(loading it could run code): use a checkpoint saved by Latent Lab")
    if isinstance(exc, pickle.UnpicklingError) or "zip archive" in text:
        return "is corrupt or not a checkpoint (torch cannot read it)"
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return f"is corrupt or not a checkpoint ({first[:160]})"


def build_model(payload: dict[str, Any], path: str | Path = "checkpoint") -> nn.Module:
    """The model a checkpoint describes, with its weights (strict key match), in eval mode. The
    checkpoint must name exactly its family's config fields: a default filled in for a field it
    lacks could differ from what it was trained with, and a field the family lacks is an option
    the code no longer has. The one exception is a field its family added later together with
    the value older networks had (``Config.ADDED_FIELDS``)."""
    fields = models.config_fields(payload["family"])
    # A field added since the checkpoint was saved is filled in only where the family records the
    # value the older network had (``Config.ADDED_FIELDS``).
    added = getattr(models.MODELS[payload["family"]].Config, "ADDED_FIELDS", {})
    config = {**{k: v for k, v in added.items() if k not in payload["config"]}, **payload["config"]}
    missing, unknown = fields - set(config), set(config) - fields
    if missing or unknown:
        what = (f"without config field(s) {sorted(missing)} that {payload['family']} has" if missing
                else f"with config field(s) {sorted(unknown)} that {payload['family']} does not have")
        raise CheckpointError(f"{path} was saved {what} (another version of Latent Lab saved it): retrain it")
    model = models.build(payload["family"], config)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit model {payload['family']}: {exc}") from exc
    return model.eval()


def load(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    payload = read(path)
    return build_model(payload, path), payload
