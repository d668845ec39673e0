"""Screens and the reference set: what an update reads (first step of the data flow).

- :mod:`~genocl_plugin.data.screens`: the screen format (AnnData ``.h5ad``), its validation,
  converters and splits;
- :mod:`~genocl_plugin.data.personal`, :mod:`~genocl_plugin.data.tracks`: the personal-genome
  and track-crop assays;
- :mod:`~genocl_plugin.data.reference`: the reference set (hg38 windows with real tracks or
  pseudo-targets) that strategies draw on and retention is measured on;
- :mod:`~genocl_plugin.data.fileio`: atomic writes, sealed JSON, plain-or-gzipped text.
"""
