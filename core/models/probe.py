"""A second, independent classifier: an MLP whose features judge sample quality where the
yardstick's cannot.

A gain in one network's features can be a gain in what that network happens to weigh, so DRS's
FD change is reported in more than the yardstick classifier's (``core/models/classifier.py``).
This network shares nothing with the yardstick: another architecture (fully connected, no
convolutions), another seed, no shift augmentation. ``core.drs.study`` reports the FD change,
precision and recall in its penultimate features beside the yardstick's.
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
