"""Kipoi imports this entry's ``defined_as`` classes from here (genocl_plugin/zoo.py)."""

from genocl_plugin.zoo import GenoclKipoiModel, IntervalFastaDataset  # noqa: F401

# genocl 0.1.0
