"""The classes Kipoi instantiates from an entry: the model and the interval + FASTA dataloader.

model.yaml and dataloader.yaml name them through the entry's ``genocl_kipoi.py``, which
imports them from ``genocl_plugin.zoo`` (that import path must keep working).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from genocl_plugin.data import reference
from genocl_plugin.errors import input_error
from genocl_plugin.zoo.checksums import load_entry_model, verify_checksum
from genocl_plugin.zoo.kipoi_compat import BaseModel, Dataset, GenomicRanges, classproperty


class GenoclKipoiModel(BaseModel):
    """A published genocl model as a Kipoi model; weights are checksum-verified safetensors.

    Parameters
    ----------
    weights
        ``model.safetensors`` (relative paths resolve in the entry; Kipoi loads from there).
    config
        genocl ``config.json`` (architecture, track names, input length).
    sha256
        Expected SHA-256 of ``weights``; checked before the weights are read.
    md5
        Expected MD5 of ``weights`` (what Kipoi's own downloads check); checked if given.
    config_sha256
        Expected SHA-256 of ``config``; checked if given.

    Raises
    ------
    GenoclInputError
        A missing file or a checksum mismatch (the message names the file).
    """

    MODEL_PACKAGE = "genocl"  # Kipoi warns if model.yaml's dependencies do not name it

    def __init__(self, weights: str, config: str, sha256: str, md5: str | None = None,
                 config_sha256: str | None = None) -> None:
        self.weights = Path(weights).resolve()
        self.config_path = Path(config).resolve()
        verify_checksum(self.config_path, config_sha256, "sha256", "args.config_sha256")
        verify_checksum(self.weights, sha256, "sha256", "args.sha256")
        verify_checksum(self.weights, md5, "md5", "args.md5")
        self.model = load_entry_model(self.config_path, self.weights)

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        """Predicted coverage for a batch of one-hot sequences.

        Parameters
        ----------
        x
            (batch, 4, length) one-hot DNA, rows A, C, G, T (N = all zeros). A
            (batch, length, 4) array (kipoiseq's layout) is transposed first.

        Returns
        -------
        np.ndarray
            (batch, tracks, positions) float32, exactly ``model(x, logits=False)``.
        """
        import torch

        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or 4 not in x.shape[1:]:
            raise input_error("predict_on_batch", "x", f"shape {x.shape} is not (batch, 4, length)",
                              "pass one-hot DNA as (batch, 4, length)")
        if x.shape[1] != 4:
            x = x.transpose(0, 2, 1)
        with torch.no_grad():
            return self.model(torch.from_numpy(np.ascontiguousarray(x)), logits=False).cpu().numpy()


class IntervalFastaDataset(Dataset):
    """kipoiseq ``SeqIntervalDl``-style dataloader: BED intervals -> one-hot (4, L) DNA.

    Parameters
    ----------
    intervals_file
        BED file: ``chrom start end [name [score strand]]``, 0-based, half-open.
    fasta_file
        FASTA file (indexed with pyfaidx; the ``.fai`` is built if missing).
    auto_resize_len
        Resize each interval around its centre to this length (the model's input length).
        Bases beyond the contig ends are N (all-zero columns).

    Notes
    -----
    The strand column is kept in the metadata but the sequence is not reverse-complemented
    (kipoiseq's default, ``use_strand=False``): the model predicts both strands itself.
    """

    _PATH_ARGS = ("intervals_file", "fasta_file")

    @classproperty
    def example_kwargs(cls) -> dict:
        """Kipoi's example kwargs with the entry's example files as absolute paths.

        dataloader.yaml writes them relative to the entry (as kipoi/models entries do); Kipoi
        returns them as written, so only ``init_example()`` (which first changes into the entry)
        could open them. Resolved against the entry (``source_dir``), ``Dl(**Dl.example_kwargs)``
        works from any working directory too.
        """
        kwargs = dict(_KIPOI_EXAMPLE_KWARGS.fget(cls))
        source = Path(cls.source_dir or os.getcwd())
        for key in cls._PATH_ARGS:
            value = kwargs.get(key)
            if isinstance(value, str) and not Path(value).is_absolute():
                kwargs[key] = str(source / value)
        return kwargs

    def __init__(self, intervals_file: str, fasta_file: str, auto_resize_len: int | None = None) -> None:
        self.intervals_file = Path(intervals_file).resolve()
        self.fasta = reference.open_fasta(Path(fasta_file).resolve(), field="fasta_file")
        self.auto_resize_len = int(auto_resize_len) if auto_resize_len else None
        self.intervals = read_bed(self.intervals_file)

    def __len__(self) -> int:
        return len(self.intervals)

    def __getitem__(self, index: int) -> dict:
        chrom, start, end, name, strand = self.intervals[index]
        if self.auto_resize_len:
            start = (start + end) // 2 - self.auto_resize_len // 2
            end = start + self.auto_resize_len
        if chrom not in self.fasta:
            raise input_error(self.intervals_file, f"interval {name}", f"contig {chrom!r} not in the FASTA",
                              "use the FASTA of the genome the BED refers to")
        codes = reference.fetch_codes(chrom, start, end, fasta=self.fasta)
        return {
            "inputs": reference.codes_to_one_hot(codes),
            "metadata": {"ranges": GenomicRanges(chrom, start, end, name, strand)},
        }


# Kipoi's own ``example_kwargs`` (a class property of its BaseDataLoader), which the one above extends.
_KIPOI_EXAMPLE_KWARGS = next(k.__dict__["example_kwargs"] for k in Dataset.__mro__ if "example_kwargs" in k.__dict__)


def read_bed(path: str | os.PathLike) -> list[tuple[str, int, int, str, str]]:
    """Read ``chrom start end [name [score strand]]`` rows (``#``/track/browser lines skipped).

    Raises
    ------
    GenoclInputError
        Missing file, fewer than three columns, non-integer or inverted coordinates.
    """
    path = Path(path)
    if not path.exists():
        raise input_error(path, "intervals_file", "not found", "pass an existing BED file")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        fields = line.split("\t")
        try:
            chrom, start, end = fields[0], int(fields[1]), int(fields[2])
        except (IndexError, ValueError):
            raise input_error(path, f"line {number}", "not chrom<TAB>start<TAB>end with integer coordinates",
                              "write a tab-separated BED file") from None
        if end <= start or start < 0:
            raise input_error(path, f"line {number}", f"empty or negative interval {start}-{end}",
                              "use 0-based half-open coordinates with start < end")
        name = fields[3] if len(fields) > 3 and fields[3] else f"{chrom}:{start}-{end}"
        strand = fields[5] if len(fields) > 5 and fields[5] in ("+", "-") else "*"
        rows.append((chrom, start, end, name, strand))
    if not rows:
        raise input_error(path, "intervals_file", "no intervals", "add at least one BED row")
    return rows

