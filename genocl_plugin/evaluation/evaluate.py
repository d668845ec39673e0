"""The former single evaluation module: re-exports every name it had from the modules that now define them.

Importers of ``genocl_plugin.evaluation.evaluate`` keep working unchanged. New code imports from the
defining module, and a test that patches a function patches it there (patching it here would not
reach its callers):

- :mod:`~genocl_plugin.evaluation.metrics`: Pearson, Spearman, JSD, new-task and cross-individual metrics;
- :mod:`~genocl_plugin.evaluation.predict`: batched predictions, reference-set predictions and metrics;
- :mod:`~genocl_plugin.evaluation.retention`: retention and drift on the reference windows, real CAGE;
- :mod:`~genocl_plugin.evaluation.report`: the forgetting report, its table, plot and JSON;
- :mod:`~genocl_plugin.evaluation.continual`: accuracy matrix, transfer and forgetting;
- :mod:`~genocl_plugin.evaluation.lineage`: ``genocl evaluate`` over run lineages.
"""

from __future__ import annotations

from genocl_plugin.evaluation.continual import (
    accuracy_matrix,
    backward_transfer,
    continual_metrics,
    forgetting,
    forward_transfer,
)
from genocl_plugin.evaluation.lineage import (
    REFERENCE_FIELDS,
    _resolve_parent,
    evaluate_runs,
    format_evaluation,
    format_peak_evaluation,
    lineage_chain,
    plot_evaluation,
    read_run_metrics,
    run_peak_source,
    run_reference_set,
    screen_task,
)
from genocl_plugin.evaluation.metrics import (
    CROSS_INDIVIDUAL_SUMMARY,
    cross_individual_metrics,
    effect_metrics,
    js_divergence,
    pearson,
    pearson_per_track,
    spearman,
    tracks_metrics,
)
from genocl_plugin.evaluation.predict import predict, reference_metrics, reference_predictions
from genocl_plugin.evaluation.report import (
    BUDGET_METRICS,
    DRIFT_NOTE,
    DRIFT_POOLED,
    _sub,
    forgetting_report,
    format_budget,
    format_epoch_selection,
    format_table,
    plot_report,
    write_json,
)
from genocl_plugin.evaluation.retention import (
    STRAND_CAGE_OUTPUTS,
    RetentionStats,
    bundled_cage_by_strand,
    real_cage_retention,
    reference_retention,
    reference_scores,
    retention,
    strand_cage_outputs,
    strand_cage_scores,
)

__all__ = [
    # metrics
    "pearson", "spearman", "pearson_per_track", "js_divergence", "effect_metrics", "tracks_metrics",
    "CROSS_INDIVIDUAL_SUMMARY", "cross_individual_metrics",
    # predict
    "predict", "reference_predictions", "reference_metrics",
    # retention
    "RetentionStats", "reference_retention", "retention", "STRAND_CAGE_OUTPUTS", "strand_cage_outputs",
    "bundled_cage_by_strand", "real_cage_retention", "strand_cage_scores", "reference_scores",
    # report
    "format_epoch_selection", "forgetting_report", "format_table", "DRIFT_POOLED", "DRIFT_NOTE", "BUDGET_METRICS",
    "format_budget", "plot_report", "write_json",
    # continual
    "accuracy_matrix", "backward_transfer", "forward_transfer", "forgetting", "continual_metrics",
    # lineage
    "read_run_metrics", "lineage_chain", "screen_task", "run_reference_set", "REFERENCE_FIELDS", "run_peak_source",
    "evaluate_runs", "format_evaluation", "format_peak_evaluation", "plot_evaluation",
    # private, used by training/update.py (_sub) and kept for old importers
    "_sub", "_resolve_parent",
]
