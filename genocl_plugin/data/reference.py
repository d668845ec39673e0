"""The reference set: what a model already knows (windows, real tracks or pseudo-targets).

Replay, every importance estimate (EWC, SI, MAS), distillation, the forgetting budget and the
retention report draw their data from one :class:`ReferenceSet`, cut at the model's own input
and output geometry:

- :func:`bundled_reference_set`: crops of the bundled windows, the default of the bundled
  minis. These are the Basenji-style "tiny hg38" set of calico/baskerville (tests/data/tiny/hg38,
  Apache-2.0): 65 real hg38 windows of 131,072 bp (45 train / 10 valid / 10 test) with 74 real
  coverage tracks at 32-bp bins over the central 65,536 bp (``genocl_plugin/bundled/SOURCE.md``).
  A model's outputs get real tracks when their names are bundled track names.
- :func:`bed_reference_set`: windows of the model's input length centred on the regions of a
  BED file (e.g. Basenji's ``sequences_human.bed``) in the user's genome FASTA, split into
  train / valid / test by the BED's 4th column or by held-out chromosomes, with optional real
  tracks from one bigWig per model output (:func:`read_targets_file`, the Basenji/Borzoi
  ``targets.txt`` convention).

Without real tracks the targets are the parent model's own predictions (pseudo-targets),
computed once per window on first use and cached on disk (memory-mapped, fp16 log coverage).

This module is the entry point: each part lives in the module of its one job, and this module
re-exports them all (``from genocl_plugin.data import reference`` keeps working):

- :mod:`~genocl_plugin.data.sequence`: uint8 codes, one-hot arrays, :func:`open_fasta`;
- :mod:`~genocl_plugin.data.targets`: ``targets.txt`` files (:func:`read_targets_file`,
  :func:`names_from_targets`), :func:`assay_group`, :func:`match_tracks`;
- :mod:`~genocl_plugin.data.bundled_windows`: the bundled windows, their tracks and the bundled
  hg38 piece, :func:`fetch_codes`, :func:`window_crops`, :func:`bundled_track_map`;
- :mod:`~genocl_plugin.data.geometry`: :class:`Geometry`, :func:`reference_output_names`,
  :func:`pool_to_bins`;
- :mod:`~genocl_plugin.data.reference_set`: :class:`ReferenceSet` (with its pseudo-target
  cache), :class:`ReferenceUnavailable`, :func:`clean_stale_teacher_caches`;
- :mod:`~genocl_plugin.data.genome_regions`: a user's BED regions (:func:`read_bed_regions`),
  their splits (:func:`assign_splits`) and bigWig tracks (:func:`bigwig_reader`);
- :mod:`~genocl_plugin.data.reference_builders`: :func:`bundled_reference_set`,
  :func:`bed_reference_set` and :func:`reference_set_for`.
"""

from __future__ import annotations

from genocl_plugin.data.bundled_windows import (
    BIN_SIZE,
    BUNDLED,
    BUNDLED_PIECE,
    N_BINS,
    SPLITS,
    TARGET_CROP,
    WINDOW_LEN,
    bundled_track_map,
    cage_strand_indices,
    fetch_codes,
    find_window,
    load_bundled_piece,
    load_windows,
    track_indices,
    track_names,
    window_crops,
    window_table,
)
from genocl_plugin.data.bundled_windows import _sequence_span as _sequence_span
from genocl_plugin.data.genome_regions import assign_splits, bigwig_reader, read_bed_regions
from genocl_plugin.data.geometry import Geometry, pool_to_bins, reference_output_names
from genocl_plugin.data.reference_builders import bed_reference_set, bundled_reference_set, reference_set_for
from genocl_plugin.data.reference_set import ReferenceSet, ReferenceUnavailable, clean_stale_teacher_caches
from genocl_plugin.data.sequence import _CODE as _CODE
from genocl_plugin.data.sequence import codes_to_one_hot, codes_to_seq, open_fasta, seq_to_codes
from genocl_plugin.data.targets import assay_group, match_tracks, names_from_targets, read_targets_file

# The ``_name as _name`` imports keep the private helpers importable from here, as before the split.
__all__ = [
    "BIN_SIZE", "BUNDLED", "BUNDLED_PIECE", "N_BINS", "SPLITS", "TARGET_CROP", "WINDOW_LEN", "Geometry",
    "ReferenceSet", "ReferenceUnavailable", "assay_group", "assign_splits", "bed_reference_set", "bigwig_reader",
    "bundled_reference_set", "bundled_track_map", "cage_strand_indices", "clean_stale_teacher_caches",
    "codes_to_one_hot", "codes_to_seq", "fetch_codes", "find_window", "load_bundled_piece", "load_windows",
    "match_tracks", "names_from_targets", "open_fasta", "pool_to_bins", "read_bed_regions", "read_targets_file",
    "reference_output_names", "reference_set_for", "seq_to_codes", "track_indices", "track_names",
    "window_crops", "window_table",
]
