"""Continual-learning strategies: one module per strategy, each a Lightning callback or datamodule.

``resolve_strategies("finetune")`` turns the CLI's ``--strategy`` value (comma-separated
names) into the list of callbacks passed to the Trainer.
"""

from __future__ import annotations

from genocl_plugin.errors import input_error

STRATEGIES = ("finetune",)


def resolve_strategies(spec: str, **params) -> list:
    """Callbacks for a comma-separated strategy list.

    Parameters
    ----------
    spec
        e.g. ``"finetune"``.
    **params
        Strategy hyperparameters.

    Returns
    -------
    list
        pytorch_lightning callbacks (empty for plain fine-tuning).
    """
    names = [n.strip().lower() for n in str(spec).split(",") if n.strip()]
    if not names:
        raise input_error("--strategy", "value", "empty", f"choose from {', '.join(STRATEGIES)}")
    callbacks = []
    for name in names:
        if name not in STRATEGIES:
            raise input_error("--strategy", name, "unknown strategy", f"choose from {', '.join(STRATEGIES)}")
        if name == "finetune":
            from genocl_plugin.strategies.finetune import finetune_callbacks

            callbacks += finetune_callbacks(**params)
    return callbacks
