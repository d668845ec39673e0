"""Publish genocl models as Kipoi model-zoo entries and load them back through Kipoi.

An entry is a folder anyone can read in a minute, laid out like the entries of the Kipoi
model zoo (kipoi/models)::

    model_zoo/enformer-mini/base-v1/
        model.yaml          Kipoi 0.8.6 model description (args with checksums, info, schema, test)
        dataloader.yaml     interval + FASTA dataloader (kipoiseq ``SeqIntervalDl``-style)
        genocl_kipoi.py     imports GenoclKipoiModel and IntervalFastaDataset (Kipoi imports ``defined_as`` from it)
        model.safetensors   the weights (never a pickle); sha256 and md5 recorded in model.yaml
        config.json         genocl model config: architecture, tracks, lineage, screens, metrics
        README.md           model card
        example_files/      real hg38 test-window intervals, FASTA, and expected outputs (expected.h5)

``config.json`` + ``model.safetensors`` make the entry a genocl model directory too, so
``genocl update --model model_zoo/enformer-mini/base-v1`` continues its lineage.

Loading is safe: :class:`GenoclKipoiModel` checks the sha256 (and md5) recorded in
``model.yaml`` before it reads a byte of the weights, and reads them with safetensors.
Publishing writes to a temporary folder, runs Kipoi's own ``kipoi test`` on it, and only
then renames it into place; an existing version is never replaced without ``force``.

The modules, one job each (none imports another in a circle)::

    kipoi_compat.py  Kipoi 0.8.6 workarounds: its config-file crash at import, NumPy 2 aliases
    names.py         entry names and versions, the Kipoi source name, the per-entry module name
    checksums.py     checksums of an entry's files; loading its model from them
    kipoi_model.py   GenoclKipoiModel and IntervalFastaDataset (what Kipoi instantiates), read_bed
    examples.py      example files: real sequence at the input length, expected outputs
    cards.py         README.md model card and the model descriptions model.yaml shares
    kipoi_yaml.py    model.yaml and dataloader.yaml
    registry.py      Kipoi's own checks, the Kipoi source, listing / finding / verifying entries
    publishing.py    publish: write an entry into a temporary folder, check it, move it into place

Published entries import ``genocl_plugin.zoo.GenoclKipoiModel`` and
``genocl_plugin.zoo.IntervalFastaDataset`` by that path, so every name is re-exported here.
"""

from genocl_plugin.zoo.cards import _strategy_text, model_card
from genocl_plugin.zoo.checksums import load_entry_model, md5sum, verify_checksum
from genocl_plugin.zoo.examples import (
    EXAMPLE_MAX_N,
    EXAMPLE_SCAN_CHUNKS,
    N_EXAMPLES,
    config_reference_fasta,
    example_sequence,
    parse_region,
    write_examples,
)
from genocl_plugin.zoo.kipoi_compat import kipoi_config_error, kipoi_config_path, restore_numpy_aliases_for_kipoi
from genocl_plugin.zoo.kipoi_model import GenoclKipoiModel, IntervalFastaDataset, read_bed
from genocl_plugin.zoo.kipoi_yaml import SIGNIFICANT_DIGITS, dataloader_yaml, model_yaml, precision_decimal
from genocl_plugin.zoo.names import ENTRY_MODULE, SOURCE_NAME, default_name, resolve_name, validate_entry_name
from genocl_plugin.zoo.publishing import base_licence_text, publish, write_entry
from genocl_plugin.zoo.registry import (
    entry_summary,
    find_entry,
    kipoi_test,
    list_entries,
    register_source,
    verify_entry,
)

__all__ = [
    "ENTRY_MODULE", "EXAMPLE_MAX_N", "EXAMPLE_SCAN_CHUNKS", "N_EXAMPLES", "SIGNIFICANT_DIGITS", "SOURCE_NAME",
    "GenoclKipoiModel", "IntervalFastaDataset",
    "_strategy_text", "base_licence_text", "config_reference_fasta", "dataloader_yaml", "default_name",
    "entry_summary", "example_sequence", "find_entry", "kipoi_config_error", "kipoi_config_path", "kipoi_test",
    "list_entries", "load_entry_model", "md5sum", "model_card", "model_yaml", "parse_region", "precision_decimal",
    "publish", "read_bed", "register_source", "resolve_name", "restore_numpy_aliases_for_kipoi",
    "validate_entry_name", "verify_checksum", "verify_entry", "write_entry", "write_examples",
]
