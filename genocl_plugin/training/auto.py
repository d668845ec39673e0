"""``--strategy auto``: the strategy (and hyperparameters) the benchmarks recommend for a base.

The studies write their picks to ``genocl_plugin/bundled/auto_strategy.json`` (benchmarks/
forgetting.py for the bundled minis, benchmarks/real_bases.py for the real pretrained bases); an
entry may be per architecture (``puffin``) or per architecture and screen kind (``puffin:activity``).
"""

from __future__ import annotations

from dataclasses import replace

from genocl_plugin.config import UpdateConfig
from genocl_plugin.evaluation.stats import load_auto_params, load_auto_strategy

# What ``--strategy auto`` (the default) means for each base architecture: fine-tuning, unless
# benchmarks/forgetting.py found a strategy whose retention advantage over fine-tuning has a 95%
# interval above zero while its in-distribution gain stays within 5% of fine-tuning's
# (stats.choose_auto_strategy; the benchmark writes bundled/auto_strategy.json; docs/results.md).
# With the strategy, its hyperparameters as the study ran them (e.g. {"freeze": "trunk"}).
# Puffin's and the BPNet's (``procapnet``) entries come from the study on real pretrained bases
# (benchmarks/real_bases.py); Enformer's from the bundled-mini study.
AUTO_STRATEGY = {"enformer": "finetune", "procapnet": "finetune", "puffin": "finetune", **load_auto_strategy()}
AUTO_PARAMS = load_auto_params()


def auto_key(model, assay: str | None = None) -> str:
    """Which ``auto`` entry applies: the architecture's pick for this kind of screen when a study
    measured one (e.g. ``puffin:activity``, benchmarks/real_bases.py scenario e), else the
    architecture's own (``puffin``: measured on perturbation screens)."""
    arch = str(model.data_params.get("arch", ""))
    key = f"{arch}:{assay}"
    return key if assay and key in AUTO_STRATEGY else arch


def resolve_auto_strategy(strategy: str, model, assay: str | None = None) -> str:
    """``auto`` -> the benchmarked strategy for the model's architecture (and screen kind); other specs unchanged."""
    if strategy.strip() != "auto":
        return strategy
    return AUTO_STRATEGY.get(auto_key(model, assay), "finetune")


def resolve_auto(config: UpdateConfig, model, assay: str | None = None) -> UpdateConfig:
    """``auto`` -> the benchmarked strategy and its hyperparameters; the user's own flags win."""
    if config.strategy.strip() != "auto":
        return config
    params = AUTO_PARAMS.get(auto_key(model, assay), {})
    return replace(config, strategy=resolve_auto_strategy(config.strategy, model, assay),
                   strategy_params={**params, **config.strategy_params})
