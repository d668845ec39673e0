"""What a model is trained on for each screen kind: datasets, collation, losses, predicted effects /
expression / activity.

A screen measures the *effect* of a perturbation (or a person's expression, or a sequence's
activity), so the model is trained on that prediction, not on a track.

Modules, one job each: ``readout`` (the readout tracks, the output window, the log activity),
``input_length`` (``--mpra-input-length``), one module per screen kind with its dataset,
collation, prediction and loss -- ``perturbation`` (MPRA and CRISPRi pairs: applied variants,
silencing by dinucleotide shuffle), ``personal`` (personal genomes: Variformer's pairwise loss,
the gene-grouped batch sampler), ``activity_library`` (activity libraries: the scale-free loss)
--, ``fingerprint`` (content hashes of datasets), ``dropout`` (screen comparisons train with
dropout off) and ``dispatch`` (``screen_dataset``, ``collate_for``, ``batch_loss``,
``predict_screen_effects``: one entry point over the screen kinds). Coverage-track screens live
in :mod:`genocl_plugin.data.tracks`. Every name is re-exported here.
"""

from __future__ import annotations

from genocl_plugin.objectives.activity_library import (
    ACTIVITY_EPS,
    ActivityDataset,
    activity_dataset,
    activity_loss,
    collate_activity,
    predicted_activity,
)
from genocl_plugin.objectives.dispatch import (
    batch_loss,
    batch_size,
    collate_for,
    predict_batch,
    predict_screen_effects,
    screen_dataset,
)
from genocl_plugin.objectives.dropout import disable_dropout, is_comparison
from genocl_plugin.objectives.fingerprint import dataset_fingerprint
from genocl_plugin.objectives.input_length import check_input_length, check_mpra_assay
from genocl_plugin.objectives.personal import (
    GeneBatchSampler,
    PersonalDataset,
    collate_personal,
    pairwise_loss,
    personal_dataset,
    predicted_expression,
)
from genocl_plugin.objectives.perturbation import (
    PerturbationDataset,
    apply_variant,
    collate_perturbations,
    crispri_dataset,
    dinuc_shuffle_codes,
    effect_loss,
    mpra_dataset,
    predicted_effects,
    silence,
)
from genocl_plugin.objectives.readout import LN2, activity, readout_mask, readout_tracks

__all__ = ["ACTIVITY_EPS", "LN2", "ActivityDataset", "GeneBatchSampler", "PersonalDataset", "PerturbationDataset",
           "activity", "activity_dataset", "activity_loss", "apply_variant", "batch_loss", "batch_size",
           "check_input_length", "check_mpra_assay", "collate_activity", "collate_for", "collate_personal",
           "collate_perturbations", "crispri_dataset", "dataset_fingerprint", "dinuc_shuffle_codes",
           "disable_dropout", "effect_loss", "is_comparison", "mpra_dataset", "pairwise_loss", "personal_dataset",
           "predict_batch", "predict_screen_effects", "predicted_activity", "predicted_effects",
           "predicted_expression", "readout_mask", "readout_tracks", "screen_dataset", "silence"]
