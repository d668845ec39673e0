"""The entry's Kipoi descriptions: model.yaml and dataloader.yaml (Kipoi 0.8.6)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import yaml

from genocl_plugin import __version__
from genocl_plugin.zoo.cards import _base_data, _doc, _lineage_text
from genocl_plugin.zoo.names import _VERSION, ENTRY_MODULE

SIGNIFICANT_DIGITS = 5  # test.expect tolerance: predictions must agree to ~5 significant digits
# Licences of base weights that derived entries inherit (genocl's own code is MIT).
_LICENCES = {"puffin": "Puffin weights: academic research use only, no commercial use (University of Texas "
                       "Southwestern Medical Center); see LICENSE in this entry"}
_CITATIONS = {
    "puffin": "Dudnyk K., Cai D., Shi C., Xu J., Zhou J. Sequence basis of transcription initiation in the "
              "human genome. Science 384, eadj0116 (2024). https://doi.org/10.1126/science.adj0116",
    "enformer": "Avsec Z. et al. Effective gene expression prediction from sequence by integrating "
                "long-range interactions. Nat Methods 18, 1196-1203 (2021). "
                "https://doi.org/10.1038/s41592-021-01252-x ; gReLU: Lal A. et al. gReLU: a "
                "comprehensive framework for DNA sequence modeling and design. Nat Methods (2025). "
                "https://doi.org/10.1038/s41592-025-02868-z",
    "procapnet": "Cochran K. et al. Dissecting the cis-regulatory syntax of transcription initiation "
                 "with deep learning. bioRxiv (2024). https://doi.org/10.1101/2024.05.28.596138 ; "
                 "architecture and losses from bpnet-lite (J. Schreiber)",
    "borzoi": "Linder J. et al. Predicting RNA-seq coverage from DNA sequence as a unifying model of "
              "gene regulation. Nat Genet 57, 949-961 (2025). https://doi.org/10.1038/s41588-024-02053-6",
}


def precision_decimal(preds: np.ndarray) -> int:
    """Decimals ``kipoi test`` compares to: about :data:`SIGNIFICANT_DIGITS` significant digits."""
    peak = float(np.max(np.abs(preds))) if preds.size else 0.0
    return max(0, SIGNIFICANT_DIGITS - max(0, math.ceil(math.log10(peak + 1.0))))


def _shape(*dims: int) -> str:
    # Kipoi evaluates schema shapes as Python tuples (``null`` fails): write "(4, 2048)".
    return "(" + ", ".join(str(int(d)) for d in dims) + ")"


def _authors(authors: list[str] | None) -> list[dict]:
    return [{"name": a} for a in (authors or ["genocl"])]


def _genocl_requirement(model) -> str:
    # borzoi-pytorch models need the optional dependency (the `borzoi` extra).
    extra = "[borzoi]" if model.model_params.get("model_type") == "BorzoiPytorchTracks" else ""
    return f"genocl{extra}=={__version__}"


def model_yaml(model, config: dict, name: str, checksums: dict, preds: np.ndarray,
               authors: list[str] | None = None) -> dict:
    """The ``model.yaml`` content (Kipoi 0.8.6 ``ModelDescription``)."""
    arch = model.data_params.get("arch", "grelu")
    tracks = list(model.task_names)
    n_out = int(preds.shape[-1])
    steps = [_lineage_text(s) for s in config.get("lineage", [])]
    screens = [Path(str(s.get("path", "?"))).name for s in config.get("screens_seen", [])]
    return {
        "defined_as": f"{ENTRY_MODULE}.GenoclKipoiModel",
        "args": {
            "weights": "model.safetensors", "config": "config.json",
            "sha256": checksums["sha256"], "md5": checksums["md5"],
            "config_sha256": checksums["config_sha256"],
        },
        "default_dataloader": ".",
        "info": {
            "authors": _authors(authors),
            "doc": _doc(model, config, name, n_out),
            "cite_as": _CITATIONS.get(arch, "gReLU: https://doi.org/10.1038/s41592-025-02868-z"),
            "trained_on": "; ".join([_base_data(config)] + [f"screen {s}" for s in screens]),
            "training_procedure": " -> ".join(steps) or "unknown",
            "version": str(_VERSION.match(name.split("/")[-1])["version"]),
            "license": _LICENCES.get(arch, "MIT"),
            "tags": ["genocl", "continual-learning", arch, "DNA", "coverage"],
        },
        "dependencies": {"pip": [_genocl_requirement(model), "kipoi==0.8.6", "torch", "safetensors", "pyfaidx"]},
        "schema": {
            "inputs": {"name": "seq", "shape": _shape(4, model.seq_len), "special_type": "DNASeq",
                       "doc": f"one-hot DNA, rows A, C, G, T (N = all zeros), {model.seq_len} bp"},
            "targets": {"name": "coverage", "shape": _shape(len(tracks), n_out),
                        "doc": f"predicted coverage, {len(tracks)} tracks x {n_out} positions of "
                               f"{model.bin_size} bp (central {n_out * model.bin_size} bp of the input)",
                        "column_labels": tracks},
        },
        "test": {"expect": "example_files/expected.h5", "precision_decimal": precision_decimal(preds)},
    }


def dataloader_yaml(model, authors: list[str] | None = None) -> dict:
    """The ``dataloader.yaml`` content (Kipoi 0.8.6 ``DataLoaderDescription``)."""
    return {
        "defined_as": f"{ENTRY_MODULE}.IntervalFastaDataset",
        "args": {
            "intervals_file": {"doc": "BED file: chrom, start, end [, name [, score, strand]]; 0-based",
                               "example": "example_files/intervals.bed"},
            "fasta_file": {"doc": "genome FASTA (indexed with pyfaidx; .fai built if missing)",
                           "example": "example_files/sequence.fa"},
            "auto_resize_len": {"doc": "resize every interval around its centre to the model's input length",
                                "default": int(model.seq_len), "optional": True, "type": "int"},
        },
        "info": {"authors": _authors(authors),
                 "doc": "kipoiseq SeqIntervalDl-style dataloader: intervals + FASTA -> one-hot (4, L)"},
        "dependencies": {"pip": [f"genocl=={__version__}", "pyfaidx"]},
        "output_schema": {
            "inputs": {"name": "seq", "shape": _shape(4, model.seq_len), "special_type": "DNASeq",
                       "doc": "one-hot DNA, rows A, C, G, T (N = all zeros)"},
            "metadata": {"ranges": {"type": "GenomicRanges", "doc": "the (resized) interval"}},
        },
    }


def _write_yaml(path: Path, data: dict) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True))

