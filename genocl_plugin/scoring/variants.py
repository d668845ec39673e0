"""Score the variants of a VCF with a sequence-to-function model: the whole API in one namespace.

The public API follows gReLU's ``grelu/variant.py``: a handful of plain functions. Each lives in
the module of its one job, and this module re-exports them all (``from genocl_plugin.scoring
import variants`` keeps working):

- :mod:`~genocl_plugin.scoring.vcf`: :func:`read_header` / :func:`read_variants` stream a
  VCF / BCF, one :class:`Variant` per ALT allele, optionally one ``--region`` or ``--shard``.
- :mod:`~genocl_plugin.scoring.windows`: :func:`allele_problem`, :func:`variant_windows`: the
  allele checks and the REF / ALT input sequences of one variant (the sequence convention).
- :mod:`~genocl_plugin.scoring.plan`: :func:`scoring_plan`: tracks, output window and scores.
- :mod:`~genocl_plugin.scoring.forward`: devices and the forward passes.
- :mod:`~genocl_plugin.scoring.score`: :func:`score_variants` (a DataFrame of variants ->
  AnnData of scores, like gReLU's ``predict_variant_effects``) and :func:`score_vcf` (VCF ->
  scores file, streamed in batches with bounded memory).
- :mod:`~genocl_plugin.scoring.writers`: the ``.tsv``, ``.vcf.gz`` + ``.tbi`` and ``.h5ad`` outputs.
- :mod:`~genocl_plugin.scoring.model`: :func:`load_scoring_model` for ``--model``.

See docs/scoring.md.
"""

from genocl_plugin.scoring.forward import check_devices, compare, parse_devices, predict_window_sums, prepare_model
from genocl_plugin.scoring.model import load_scoring_model, model_label
from genocl_plugin.scoring.plan import (
    SCORES,
    ScoringPlan,
    check_share_windows,
    column_names,
    scoring_plan,
    select_tracks,
    strand_pairs,
    window_bins,
)
from genocl_plugin.scoring.score import (
    COUNT_MAX_BYTES,
    count_alleles,
    countable,
    score_batches,
    score_variants,
    score_vcf,
)
from genocl_plugin.scoring.vcf import (
    BGZF_EOF,
    VCF_COLUMNS,
    Variant,
    VariantWarning,
    parse_region,
    parse_shard,
    read_header,
    read_variants,
)
from genocl_plugin.scoring.windows import SKIP_REASONS, allele_problem, contig_aliases, genome_reader, variant_windows
from genocl_plugin.scoring.writers import OUTPUT_SUFFIXES, info_ids, output_kind

__all__ = [
    "BGZF_EOF", "COUNT_MAX_BYTES", "OUTPUT_SUFFIXES", "SCORES", "SKIP_REASONS", "VCF_COLUMNS", "ScoringPlan",
    "Variant", "VariantWarning", "allele_problem", "check_devices", "check_share_windows", "column_names", "compare",
    "contig_aliases",
    "count_alleles", "countable", "genome_reader", "info_ids", "load_scoring_model", "model_label", "output_kind",
    "parse_devices", "parse_region", "parse_shard", "predict_window_sums", "prepare_model", "read_header",
    "read_variants", "score_batches", "score_variants", "score_vcf", "scoring_plan", "select_tracks", "strand_pairs",
    "variant_windows", "window_bins",
]
