"""What an update learned, forgot and transferred: metrics, retention, reports, lineage evaluation.

One job per module, lowest first:

- :mod:`~genocl_plugin.evaluation.metrics`: agreement metrics on arrays (Pearson, Spearman, JSD,
  new-task scores, cross-individual correlation per gene);
- :mod:`~genocl_plugin.evaluation.predict`: a model's predictions in batches and on the reference windows;
- :mod:`~genocl_plugin.evaluation.retention`: retention and drift of an update on the reference windows;
- :mod:`~genocl_plugin.evaluation.report`: the forgetting report of ``genocl update`` (table, plot, JSON);
- :mod:`~genocl_plugin.evaluation.continual`: accuracy matrix, backward / forward transfer, forgetting;
- :mod:`~genocl_plugin.evaluation.peaks`: peak-vs-flank AUROC and signal on held-out peaks;
- :mod:`~genocl_plugin.evaluation.lineage`: ``genocl evaluate`` over run lineages;
- :mod:`~genocl_plugin.evaluation.stats`: statistics over repeated runs;
- :mod:`~genocl_plugin.evaluation.evaluate`: the former single module, re-exporting the names above.

The main names are importable from the package (``from genocl_plugin.evaluation import pearson``).
Each loads its module on first use, so importing ``peaks`` or ``stats`` alone does not import
torch (``genocl update`` checks a peak file before the model loads). ``predict`` and ``retention``
name modules of the package; their functions of the same name live in those modules.
"""

from __future__ import annotations

import importlib

# defining module -> the names the package re-exports from it
_EXPORTS = {
    "metrics": ("pearson", "spearman", "pearson_per_track", "js_divergence", "effect_metrics", "tracks_metrics",
                "cross_individual_metrics"),
    "predict": ("reference_predictions", "reference_metrics"),
    "retention": ("RetentionStats", "reference_retention", "real_cage_retention", "reference_scores"),
    "report": ("forgetting_report", "format_table", "format_budget", "format_epoch_selection", "plot_report",
               "write_json"),
    "continual": ("accuracy_matrix", "backward_transfer", "forward_transfer", "forgetting", "continual_metrics"),
    "lineage": ("read_run_metrics", "lineage_chain", "screen_task", "evaluate_runs", "format_evaluation",
                "plot_evaluation"),
}
__all__ = [name for names in _EXPORTS.values() for name in names]


def __getattr__(name: str):
    for module, names in _EXPORTS.items():
        if name in names:
            return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
