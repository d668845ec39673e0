"""Continual-learning strategies: one module per strategy, each a Lightning callback or datamodule."""
