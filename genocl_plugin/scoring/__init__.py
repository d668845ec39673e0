"""Variant-effect scoring of VCF/BCF files with any model version (``genocl score-vcf``)."""

from genocl_plugin.scoring.model import load_scoring_model
from genocl_plugin.scoring.plan import SCORES
from genocl_plugin.scoring.score import score_variants, score_vcf
from genocl_plugin.scoring.vcf import Variant, VariantWarning, read_variants

__all__ = ["SCORES", "Variant", "VariantWarning", "load_scoring_model", "read_variants", "score_variants",
           "score_vcf"]
