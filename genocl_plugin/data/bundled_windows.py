"""The bundled hg38 windows and their tracks, and sequence lookup in them or in a FASTA.

These are the Basenji-style "tiny hg38" set of calico/baskerville (tests/data/tiny/hg38,
Apache-2.0): 65 real hg38 windows of 131,072 bp (45 train / 10 valid / 10 test) with 74 real
coverage tracks at 32-bp bins over the central 65,536 bp (``genocl_plugin/bundled/SOURCE.md``),
and a 524,288-bp piece of hg38 chr2 (:func:`load_bundled_piece`). This module loads them, names
their tracks, finds the window holding an interval, reads sequence from them or from a FASTA
(:func:`fetch_codes`), tiles them into model-sized crops (:func:`window_crops`) and matches a
model's outputs to the bundled tracks (:func:`bundled_track_map`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from genocl_plugin.data.sequence import codes_to_seq, seq_to_codes
from genocl_plugin.data.targets import names_from_targets, read_targets_file
from genocl_plugin.errors import input_error

BUNDLED = Path(__file__).resolve().parents[1] / "bundled"
WINDOW_LEN = 131_072
TARGET_CROP = 32_768  # bp of sequence on each side of the 65,536-bp target region
BIN_SIZE = 32
N_BINS = 2_048
SPLITS = ("train", "valid", "test")
# 524,288 bp of real hg38 chr2 (chr2:10,001-534,288), 2-bit packed: the example sequence of
# published models of any input length up to Borzoi's (bundled/SOURCE.md).
BUNDLED_PIECE = BUNDLED / "hg38_chr2_piece.npz"


@functools.lru_cache(maxsize=1)
def load_windows() -> dict[str, np.ndarray]:
    """Load the bundled windows (arrays memory-cached after the first call).

    Returns
    -------
    dict
        ``{split}_seq`` (N, 131072) uint8 codes, ``{split}_targets`` (N, 2048, 74) float16,
        ``{split}_coords`` (N,) ``chrom:start-end`` of the 131,072-bp sequence.
    """
    with np.load(BUNDLED / "basenji_tiny_hg38.npz") as data:
        out = {key: data[key] for key in data.files}
    # The npz coords are the 65,536-bp target regions (sequences.bed); store sequence spans.
    for split in SPLITS:
        out[f"{split}_coords"] = np.array([_sequence_span(c) for c in out[f"{split}_coords"]])
    return out


def _sequence_span(coord) -> str:
    text = coord.decode() if isinstance(coord, bytes) else str(coord)
    chrom, rest = text.split(":")
    start, end = (int(x) for x in rest.split("-"))
    if end - start == WINDOW_LEN:
        return text
    return f"{chrom}:{start - TARGET_CROP}-{end + TARGET_CROP}"


@functools.lru_cache(maxsize=1)
def track_names() -> list[str]:
    """Descriptions of the 74 bundled tracks (``CAGE:...``, ``DNASE:...``, ``RNA:...``)."""
    return names_from_targets(read_targets_file(BUNDLED / "targets.txt"))


def track_indices(prefix: str) -> list[int]:
    """Indices of the bundled tracks whose description starts with ``prefix`` (e.g. "CAGE")."""
    return [i for i, name in enumerate(track_names()) if name.startswith(prefix)]


def cage_strand_indices() -> tuple[list[int], list[int]]:
    """Indices of the plus- and minus-strand CAGE tracks (identifiers end in + / -)."""
    plus = [i for i, n in enumerate(track_names()) if n.startswith("CAGE") and n.endswith("+]")]
    minus = [i for i, n in enumerate(track_names()) if n.startswith("CAGE") and n.endswith("-]")]
    return plus, minus


def bundled_track_map(names: list[str]) -> list[list[int]] | None:
    """For each model output, the bundled tracks it is (matched by name), or None if any is unknown.

    The bundled ProCapNet mini's two outputs are the summed CAGE signal of each strand.
    """
    index = {n: i for i, n in enumerate(track_names())}
    plus, minus = cage_strand_indices()
    summed = {"CAGE plus strand (sum of 12)": plus, "CAGE minus strand (sum of 12)": minus}
    out = []
    for name in names:
        if name in index:
            out.append([index[name]])
        elif name in summed:
            out.append(summed[name])
        else:
            return None
    return out


def window_table() -> list[tuple[str, str, int, int, int]]:
    """All bundled windows as ``(split, chrom, start, end, index_in_split)``."""
    data = load_windows()
    table = []
    for split in SPLITS:
        for i, coord in enumerate(data[f"{split}_coords"]):
            chrom, rest = str(coord).split(":")
            start, end = (int(x) for x in rest.split("-"))
            table.append((split, chrom, start, end, i))
    return table


def find_window(chrom: str, start: int, end: int) -> tuple[str, int, int] | None:
    """The bundled window containing ``chrom:start-end``, as ``(split, index, window_start)``."""
    for split, w_chrom, w_start, w_end, i in window_table():
        if w_chrom == chrom and w_start <= start and end <= w_end:
            return split, i, w_start
    return None


@functools.lru_cache(maxsize=1)
def load_bundled_piece() -> tuple[str, int, np.ndarray]:
    """The bundled real hg38 piece: ``(chrom, start, codes)`` (0-based start, uint8 codes).

    Stored 2-bit packed (no N in the piece); the unpacked sequence is checked against the
    SHA-256 recorded when it was written (``scripts/make_bundled_piece.py``).
    """
    import hashlib

    with np.load(BUNDLED_PIECE) as data:
        bits = np.unpackbits(data["packed"]).reshape(-1, 2)
        codes = (bits[:, 0] * 2 + bits[:, 1]).astype(np.uint8)[: int(data["length"])]
        chrom, start, digest = str(data["chrom"]), int(data["start"]), str(data["sha256"])
    if hashlib.sha256(codes_to_seq(codes).encode("ascii")).hexdigest() != digest:
        raise input_error(BUNDLED_PIECE, "packed", "sequence differs from its recorded SHA-256",
                          "reinstall genocl (the bundled file is damaged)")
    codes.setflags(write=False)
    return chrom, start, codes


def fetch_codes(chrom: str, start: int, end: int, fasta=None) -> np.ndarray:
    """uint8 codes of ``chrom:start-end`` from a FASTA or the bundled windows, N-padded.

    Positions outside the contig (or outside every bundled window) are N.
    """
    out = np.full(end - start, 4, dtype=np.uint8)
    if fasta is not None:
        length = len(fasta[chrom])
        lo, hi = max(start, 0), min(end, length)
        if hi > lo:
            out[lo - start : hi - start] = seq_to_codes(str(fasta[chrom][lo:hi]))
        return out
    # Every bundled window overlapping the interval contributes (an input longer than a
    # 131-kb window, e.g. Enformer's 196,608 bp, contains a window without either end in it).
    for split, w_chrom, w_start, w_end, i in window_table():
        lo, hi = max(start, w_start), min(end, w_end)
        if w_chrom == chrom and hi > lo:
            out[lo - start : hi - start] = load_windows()[f"{split}_seq"][i][lo - w_start : hi - w_start]
    return out


def window_crops(split: str, seq_len: int, n_bins: int | None = None, stride: int | None = None):
    """Tile the target regions of the bundled windows into model-sized crops.

    Parameters
    ----------
    split
        ``train``, ``valid`` or ``test``.
    seq_len
        Input length in bp (a multiple of 32).
    n_bins
        Output bins per crop (default ``seq_len // 32``: output covers the whole input).
    stride
        Step between crops in bp (default: the output span, non-overlapping).

    Returns
    -------
    tuple of np.ndarray
        ``codes`` (n, seq_len) uint8 and ``targets`` (n, n_bins, 74) float32, the real tracks
        of the central ``n_bins`` bins of each crop.
    """
    data = load_windows()
    n_bins = n_bins or seq_len // BIN_SIZE
    out_span = n_bins * BIN_SIZE
    flank = (seq_len - out_span) // 2
    stride = stride or out_span
    codes, targets = [], []
    for seq, tgt in zip(data[f"{split}_seq"], data[f"{split}_targets"], strict=True):
        for out_start in range(TARGET_CROP, WINDOW_LEN - TARGET_CROP - out_span + 1, stride):
            in_start = out_start - flank
            codes.append(seq[in_start : in_start + seq_len])
            b0 = (out_start - TARGET_CROP) // BIN_SIZE
            targets.append(tgt[b0 : b0 + n_bins].astype(np.float32))
    return np.stack(codes), np.stack(targets)
