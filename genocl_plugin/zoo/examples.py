"""An entry's example files: real sequence at the model's input length and its expected outputs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from genocl_plugin.data import reference
from genocl_plugin.errors import input_error
from genocl_plugin.workarounds import full_float32_precision

N_EXAMPLES = 3
_REGION = re.compile(r"^(?P<chrom>[^:\s]+):(?P<start>[0-9,]+)-(?P<end>[0-9,]+)$")
EXAMPLE_MAX_N = 0.5  # a FASTA example window with more N than this is refused (pick a region)
EXAMPLE_SCAN_CHUNKS = 64  # how far into a FASTA the default example search looks


def parse_region(text: str, field: str = "--example-region") -> tuple[str, int, int]:
    """``chr:start-end`` (1-based inclusive, commas allowed) -> ``(chrom, start0, end)``."""
    match = _REGION.match(str(text).strip())
    start = int(match["start"].replace(",", "")) if match else 0
    end = int(match["end"].replace(",", "")) if match else 0
    if match is None or start < 1 or end < start:
        raise input_error(field, "region", f"{text!r} is not chr:start-end", "write e.g. chr2:1,000,001-1,600,000")
    return match["chrom"], start - 1, end


def config_reference_fasta(config: dict) -> str | None:
    """The newest ``--reference-fasta`` an update of this model was given, if it still exists."""
    for step in reversed(config.get("lineage") or []):
        path = ((step or {}).get("hyperparameters") or {}).get("reference_fasta")
        if path and Path(path).is_file():
            return str(path)
    return None


def _example_starts(available: int, seq_len: int, n: int) -> list[int]:
    """Up to ``n`` distinct window starts evenly spread over the central ``n * seq_len`` bp."""
    span = min(available, n * seq_len)
    first = (available - span) // 2
    if n == 1 or span == seq_len:
        return [first]
    step = (span - seq_len) / (n - 1)
    return sorted({first + round(i * step) for i in range(n)})


def example_sequence(seq_len: int, n: int = N_EXAMPLES, fasta: str | os.PathLike | None = None,
                     region: str | None = None) -> tuple[str, int, np.ndarray, list[int], str]:
    """Real hg38 sequence for ``n`` example windows of ``seq_len`` bp (the model's input length).

    Parameters
    ----------
    seq_len
        The model's input length.
    n
        Number of windows (fewer when the sequence is shorter than ``n * seq_len``: they then
        overlap, and a sequence exactly ``seq_len`` long gives one).
    fasta
        An indexed genome FASTA to cut them from (``--example-fasta``, or the reference FASTA
        the model's updates used); None: genocl's bundled 524,288-bp hg38 piece.
    region
        ``chr:start-end`` (1-based) inside ``fasta``; default the first stretch of the FASTA
        with < 1% N.

    Returns
    -------
    tuple
        ``(chrom, start, codes, offsets, source)``: the stretch's contig and 0-based start, its
        uint8 codes, each window's offset in it, and a description of where it came from.

    Raises
    ------
    GenoclInputError
        The input is longer than the sequence (or region), the region is not in the FASTA,
        or the windows are mostly N.
    """
    if fasta is None:
        if region is not None:
            raise input_error("--example-region", "region", "needs a genome to cut it from",
                              "pass --example-fasta GENOME.fa with it")
        chrom, start, codes = reference.load_bundled_piece()
        if seq_len > len(codes):
            raise input_error(
                "--example-fasta", "example sequence",
                f"the model's {seq_len:,}-bp input is longer than genocl's bundled {len(codes):,}-bp hg38 piece",
                "pass --example-fasta GENOME.fa (and --example-region chr:start-end)")
        offsets = _example_starts(len(codes), seq_len, n)
        lo, hi = offsets[0], offsets[-1] + seq_len
        return chrom, start + lo, codes[lo:hi], [o - lo for o in offsets], "genocl bundled hg38 piece"
    genome = reference.open_fasta(fasta, field="--example-fasta")
    if region is not None:
        chrom, lo, hi = parse_region(region)
        if chrom not in genome or hi > len(genome[chrom]):
            raise input_error(fasta, "--example-region", f"{region} is not inside the FASTA",
                              "pass a region of one of its contigs")
        candidates = [(chrom, lo, hi)]
    else:
        # The first stretch of n windows with < 1% N (contig starts are telomere gaps).
        need = n * seq_len
        candidates = [(c, p, min(p + need, len(genome[c]))) for c in genome.keys()
                      for p in range(0, max(len(genome[c]) - seq_len, 0) + 1, need)][:EXAMPLE_SCAN_CHUNKS]
    best = None
    for chrom, lo, hi in candidates:
        if hi - lo < seq_len:
            continue
        offsets = _example_starts(hi - lo, seq_len, n)
        a, b = lo + offsets[0], lo + offsets[-1] + seq_len
        codes = reference.fetch_codes(chrom, a, b, fasta=genome)
        frac = max(float(np.mean(codes[o - offsets[0] : o - offsets[0] + seq_len] == 4)) for o in offsets)
        if best is None or frac < best[0]:
            best = (frac, chrom, a, codes, [o - offsets[0] for o in offsets])
        if frac < 0.01:
            break
    if best is None:
        where = region or "any contig"
        raise input_error(fasta, "--example-region", f"{where} is shorter than the model's {seq_len:,}-bp input",
                          "pass a FASTA / region at least as long as the model's input")
    frac, chrom, a, codes, offsets = best
    if frac > EXAMPLE_MAX_N:
        raise input_error(fasta, "--example-region", f"the example windows at {chrom}:{a + 1} are {frac:.0%} N",
                          "pass --example-region chr:start-end over real sequence")
    return chrom, a, codes, offsets, Path(fasta).name


def write_examples(out: Path, model, n: int = N_EXAMPLES, fasta: str | os.PathLike | None = None,
                   region: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Write example intervals, FASTA (+ .fai) and expected outputs (``expected.h5``).

    The examples are real sequence at the model's input length (:func:`example_sequence`):
    cut from ``fasta`` (``--example-fasta`` / the model's reference FASTA) or from genocl's
    bundled hg38 piece. The FASTA holds one contig, ``<chrom>_<start>_<end>``; the BED holds
    the windows on it. The expected outputs are genocl's own predictions
    (``model(x, logits=False)``) written with Kipoi's ``HDF5BatchWriter`` in the ``inputs`` /
    ``preds`` layout ``kipoi test`` reads.

    Returns
    -------
    tuple of np.ndarray
        ``inputs`` (n, 4, L) and ``preds`` (n, tracks, positions).
    """
    import pyfaidx
    from kipoi.writers import HDF5BatchWriter

    from genocl_plugin.evaluation import evaluate

    out.mkdir(parents=True)
    seq_len = int(model.seq_len)
    chrom, start, codes, offsets, source = example_sequence(seq_len, n, fasta=fasta, region=region)
    end = start + len(codes)
    contig = f"{chrom}_{start}_{end}"
    seq = reference.codes_to_seq(codes)
    lines = [f">{contig} {chrom}:{start + 1}-{end} ({source})"]
    lines += [seq[i : i + 60] for i in range(0, len(seq), 60)]
    (out / "sequence.fa").write_text("\n".join(lines) + "\n")
    pyfaidx.Faidx(str(out / "sequence.fa")).close()  # writes sequence.fa.fai beside it
    bed = [f"{contig}\t{o}\t{o + seq_len}\t{chrom}:{start + o + 1}-{start + o + seq_len}" for o in offsets]
    (out / "intervals.bed").write_text("\n".join(bed) + "\n")
    inputs = reference.codes_to_one_hot(np.stack([codes[o : o + seq_len] for o in offsets])).astype(np.float32)
    with full_float32_precision():  # Kipoi's test recomputes these in a fresh process (workarounds.py)
        preds = evaluate.predict(model, inputs).astype(np.float32)
    # Kipoi's default chunk (10,000 rows, gzip) makes this tiny file take seconds to write.
    writer = HDF5BatchWriter(str(out / "expected.h5"), chunk_size=len(offsets))
    writer.batch_write({"inputs": inputs, "preds": preds})
    writer.close()
    return inputs, preds

