"""Variant-effect scoring of VCF/BCF files with any model version (``genocl score-vcf``)."""

from genocl_plugin.scoring.variants import (
    SCORES,
    Variant,
    VariantWarning,
    load_scoring_model,
    read_variants,
    score_variants,
    score_vcf,
)

__all__ = ["SCORES", "Variant", "VariantWarning", "load_scoring_model", "read_variants", "score_variants",
           "score_vcf"]
