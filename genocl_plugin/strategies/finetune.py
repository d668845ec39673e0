"""Plain fine-tuning: the baseline every continual-learning strategy must beat.

All weights train on the new objective with nothing to protect what the model knew.
"""

from __future__ import annotations


def finetune_callbacks(**_params) -> list:
    """No callbacks: plain fine-tuning adds nothing to gReLU's training loop."""
    return []
