"""The decorator for a model's sampling and scoring methods."""

from __future__ import annotations

import functools

import torch


def inference(method):
    """Run ``method`` without gradients and in eval mode (BatchNorm's running statistics, no
    dropout), then put the model back in the mode it was in: fakes or features drawn in the
    middle of training must not leave the nets in eval mode for the next training step."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return method(self, *args, **kwargs)
        finally:
            self.train(was_training)

    return wrapper
