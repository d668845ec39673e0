"""Screens and the reference set: what an update reads (first step of the data flow).

- :mod:`~genocl_plugin.data.screens`: the entry point -- ``read_screen``, ``validate_screen``,
  the converters, the splits and the bundled screens (re-exported from the modules below);
- :mod:`~genocl_plugin.data.layout`: the screen format (AnnData ``.h5ad``) and its validation;
- one module per assay: :mod:`~genocl_plugin.data.mpra` (MPRA / saturation mutagenesis),
  :mod:`~genocl_plugin.data.crispri`, :mod:`~genocl_plugin.data.activity` (lentiMPRA /
  STARR-seq), :mod:`~genocl_plugin.data.personal` (personal genomes with expression),
  :mod:`~genocl_plugin.data.tracks` (track crops);
- :mod:`~genocl_plugin.data.splits`, :mod:`~genocl_plugin.data.checks`,
  :mod:`~genocl_plugin.data.intervals`: hold-out splits, field checks, interval parsing;
- :mod:`~genocl_plugin.data.reference`: the entry point of the reference set (hg38 windows with
  real tracks or pseudo-targets) that strategies draw on and retention is measured on, re-exporting
  the modules below;
- :mod:`~genocl_plugin.data.sequence`: uint8 codes, one-hot arrays, indexed FASTA access;
- :mod:`~genocl_plugin.data.targets`: Basenji-style ``targets.txt`` files, assay groups, track
  selection by name;
- :mod:`~genocl_plugin.data.bundled_windows`: the bundled hg38 windows, their tracks and the
  bundled chr2 piece, sequence lookup in them or in a FASTA;
- :mod:`~genocl_plugin.data.geometry`: a model's input / output geometry and reference outputs;
- :mod:`~genocl_plugin.data.reference_set`: the ``ReferenceSet`` class and its pseudo-target cache;
- :mod:`~genocl_plugin.data.genome_regions`: a user's BED regions, their train / valid / test
  splits and bigWig tracks over them;
- :mod:`~genocl_plugin.data.reference_builders`: building a model's reference set (bundled
  windows or BED + FASTA, ``reference_set_for``);
- :mod:`~genocl_plugin.data.fileio`: atomic writes, sealed JSON, plain-or-gzipped text.
"""
