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
- :mod:`~genocl_plugin.data.reference`: the reference set (hg38 windows with real tracks or
  pseudo-targets) that strategies draw on and retention is measured on;
- :mod:`~genocl_plugin.data.fileio`: atomic writes, sealed JSON, plain-or-gzipped text.
"""
