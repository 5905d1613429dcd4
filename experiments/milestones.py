"""The ``--milestones`` option of the experiments that train one run in ``--resume`` pieces and
measure it at each milestone epoch (swav/length_curve.py, gon/pair_curve.py)."""

from __future__ import annotations

import argparse


def epoch_list(text: str) -> list[int]:
    """'9,20,30' -> [9, 20, 30], sorted and without repeats; a plain argparse error otherwise."""
    try:
        epochs = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected epochs separated by commas, like 9,20,30; got {text!r}") from None
    if epochs[0] < 1:
        raise argparse.ArgumentTypeError(f"epochs start at 1, got {epochs[0]}")
    return epochs
