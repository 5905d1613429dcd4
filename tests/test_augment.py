"""Exemplar augmentation: both classifiers train on the same schedule; generated images get labels."""

import torch

from core import augment, data
from core.models.exemplar_vae import ExemplarVAE, ExemplarVAEConfig


def test_baseline_and_augmented_classifiers_both_learn(monkeypatch):
    torch.manual_seed(0)
    model = ExemplarVAE(ExemplarVAEConfig(latent_dim=4, hidden_dim=16))
    model.set_exemplars(data.load("mnist", "train").images)
    calls = []
    original = model.generate_from

    def counting(images, per_image, generator=None):
        calls.append((len(images), per_image))
        return original(images, per_image, generator)

    monkeypatch.setattr(model, "generate_from", counting)
    config = augment.AugmentConfig(epochs=1, hidden=64)
    result = augment.compare("mnist", model, config, progress=False)
    assert 0.0 <= result["augmented_test_error"] <= 1.0
    assert result["baseline_test_error"] < 0.5  # a 784-64-64-10 MLP learns MNIST in one epoch
    assert calls and all(c == (100, 1) for c in calls)  # one generated image per real one
    assert len(calls) == 4000 // 100
