"""A second, independent classifier: an MLP whose features judge sample quality where the
yardstick's cannot.

DRS chooses its discriminator head and γ by the Fréchet distance in the yardstick classifier's
features (``core/models/classifier.py``), so a gain measured there is partly a gain in the measure
that was optimised. This network shares nothing with that choice: another architecture (fully
connected, no convolutions), another seed, no shift augmentation. ``core.drs.study`` reports the
FD change, precision and recall in its penultimate features beside the yardstick's.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from core.models.classifier import LabelClassifier


@dataclass
class ProbeConfig:
    classes: int = 10
    hidden: int = 512
    features: int = 256  # width of the penultimate layer, the space its FD is measured in
    dropout: float = 0.2
    batch_size: int = 128
    lr: float = 1e-3
    decay_epoch: int = 10  # from this epoch on, lr / 10


class Probe(LabelClassifier):
    family = "probe"
    Config = ProbeConfig

    def __init__(self, config: ProbeConfig):
        super().__init__()
        self.config = config
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(28 * 28, config.hidden), nn.ReLU(), nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.features), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.features, config.classes))
