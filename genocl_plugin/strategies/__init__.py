"""Continual-learning strategies: one module per strategy, each a Lightning callback or datamodule.

``resolve_strategies("replay,ewc", ewc_lambda=10)`` turns the CLI's ``--strategy`` value
(comma-separated names) and hyperparameters into the callbacks passed to the Trainer. Modules
are imported only when their strategy is used.
"""

from __future__ import annotations

import importlib

from genocl_plugin.errors import input_error

# name -> (module, factory); each factory takes the CLI's strategy_params as keywords.
REGISTRY = {
    "finetune": ("finetune", "finetune_callbacks"),
    "replay": ("replay", "replay_callbacks"),
    "distill": ("distill", "distill_callbacks"),
    "ewc": ("ewc", "ewc_callbacks"),
    "si": ("si", "si_callbacks"),
    "mas": ("mas", "mas_callbacks"),
    "l2sp": ("l2sp", "l2sp_callbacks"),
    "multihead": ("multihead", "multihead_callbacks"),
    "lora": ("lora", "lora_callbacks"),
    "freeze": ("freeze", "freeze_callbacks"),
}
STRATEGIES = tuple(REGISTRY)
# Hyperparameters that only make sense with one of these strategies.
PARAM_OWNERS = {
    "ewc_lambda": ("ewc",), "ewc_decay": ("ewc",), "si_c": ("si",), "mas_lambda": ("mas",),
    "l2sp_alpha": ("l2sp",), "replay_ratio": ("replay",), "replay_budget_mb": ("replay", "distill"),
    "replay_policy": ("replay", "distill"), "distill_weight": ("distill",),
}


def parse_strategies(spec: str) -> list[str]:
    """Validated strategy names of a comma-separated ``--strategy`` value."""
    names = [n.strip().lower() for n in str(spec).split(",") if n.strip()]
    choices = ", ".join(STRATEGIES)
    if not names:
        raise input_error("--strategy", "value", "empty", f"choose from {choices}")
    for name in names:
        if name not in REGISTRY:
            raise input_error("--strategy", name, "unknown strategy", f"choose from {choices}")
    if len(set(names)) != len(names):
        raise input_error("--strategy", spec, "a strategy is listed twice", "list each strategy once")
    if "finetune" in names and len(names) > 1:
        raise input_error("--strategy", spec, "finetune is the plain baseline and combines with nothing",
                          "drop finetune (e.g. --strategy replay,ewc)")
    return names


def resolve_strategies(spec: str, **params) -> list:
    """Callbacks for a comma-separated strategy list.

    Parameters
    ----------
    spec
        e.g. ``"finetune"`` or ``"replay,ewc"``.
    **params
        Strategy hyperparameters (the CLI's ``strategy_params``); ``max_drift`` adds the
        forgetting-budget callback to any strategy; ``seed`` seeds the strategies that sample
        (replay and distillation draws, the windows of the EWC / MAS importance).

    Returns
    -------
    list
        pytorch_lightning callbacks (empty for plain fine-tuning).

    Raises
    ------
    GenoclInputError
        Unknown or incompatible names, or a hyperparameter for a strategy not chosen.
    """
    names = parse_strategies(spec)
    for key, value in params.items():
        owners = PARAM_OWNERS.get(key, ())
        if value is not None and owners and not set(owners) & set(names):
            flag = "--" + key.replace("_", "-")
            raise input_error(flag, str(value), f"only used by {' or '.join(owners)}, not by --strategy {spec}",
                              f"add {owners[0]} to --strategy or drop {flag}")
    callbacks = []
    for name in names:
        module, factory = REGISTRY[name]
        callbacks += getattr(importlib.import_module(f"genocl_plugin.strategies.{module}"), factory)(**params)
    if params.get("max_drift") is not None:
        from genocl_plugin.strategies.drift import drift_callbacks

        callbacks += drift_callbacks(**params)
    return callbacks
