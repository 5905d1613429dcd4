"""Model families by name. Each family lives in its own file with a typed config dataclass."""

from __future__ import annotations

from dataclasses import asdict, fields

from torch import nn

from core.models.classifier import Classifier
from core.models.exemplar_vae import ExemplarVAE
from core.models.gan import GAN
from core.models.gon import GON, ImplicitGON
from core.models.gon_ae import GONAutoencoder, ImplicitGONAutoencoder
from core.models.probe import Probe
from core.models.swav import SwAV
from core.models.vae import VAE

MODELS: dict[str, type[nn.Module]] = {
    VAE.family: VAE,
    ExemplarVAE.family: ExemplarVAE,
    Classifier.family: Classifier,
    Probe.family: Probe,
    SwAV.family: SwAV,
    GAN.family: GAN,
    GON.family: GON,
    ImplicitGON.family: ImplicitGON,
    GONAutoencoder.family: GONAutoencoder,
    ImplicitGONAutoencoder.family: ImplicitGONAutoencoder,
}


def check_name(name: str) -> str:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return name


def config_fields(name: str) -> set[str]:
    """The names of family ``name``'s config fields."""
    return {f.name for f in fields(MODELS[check_name(name)].Config)}


def build(name: str, config: dict | None = None) -> nn.Module:
    """A fresh model of family ``name``; ``config`` overrides the family's defaults."""
    cls = MODELS[check_name(name)]
    known = config_fields(name)
    unknown = set(config or {}) - known
    if unknown:
        raise ValueError(f"{name} has no config field(s) {sorted(unknown)}; known: {sorted(known)}")
    return cls(cls.Config(**{key: checked(name, cls.Config(), key, value) for key, value in (config or {}).items()}))


def checked(name: str, defaults, key: str, value):
    """``value`` for config field ``key``, of the type its default has (an int is taken for a
    float, a list of the right length for a tuple); a plain error otherwise, as a mistyped
    ``--set`` deserves."""
    return fitted(name, key, getattr(defaults, key), value)


def fitted(name: str, key: str, default, value):
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is tuple and isinstance(value, (list, tuple)) and len(value) == len(default):
        # A pair such as a crop's scale range, given on the command line as a JSON list.
        return tuple(fitted(name, key, part, item) for part, item in zip(default, value))
    if default is None or (isinstance(value, expected) and not (expected is int and isinstance(value, bool))):
        return value
    raise ValueError(f"{name}'s {key} takes a {expected.__name__} (default {default!r}), got {value!r}")


def config_dict(model: nn.Module) -> dict:
    return asdict(model.config)
