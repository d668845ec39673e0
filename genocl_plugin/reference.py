"""Reference-genome sequence and tracks: the bundled hg38 windows and user FASTA files.

The bundled windows are the Basenji-style "tiny hg38" set of calico/baskerville
(tests/data/tiny/hg38, Apache-2.0): 65 real hg38 windows of 131,072 bp (45 train / 10 valid /
10 test) with 74 real coverage tracks at 32-bp bins over the central 65,536 bp. See
``genocl_plugin/bundled/SOURCE.md``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from genocl_plugin.errors import input_error

BUNDLED = Path(__file__).parent / "bundled"
WINDOW_LEN = 131_072
TARGET_CROP = 32_768  # bp of sequence on each side of the 65,536-bp target region
BIN_SIZE = 32
N_BINS = 2_048
SPLITS = ("train", "valid", "test")
# uint8 codes of the bundled sequences: 0=A 1=C 2=G 3=T 4=N
_CODE = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _CODE[_b] = _i
    _CODE[ord(chr(_b).lower())] = _i


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
    names = []
    with open(BUNDLED / "targets.txt") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        col = header.index("description")
        ident = header.index("identifier")
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            names.append(f"{fields[col]} [{fields[ident]}]")
    return names


def track_indices(prefix: str) -> list[int]:
    """Indices of the bundled tracks whose description starts with ``prefix`` (e.g. "CAGE")."""
    return [i for i, name in enumerate(track_names()) if name.startswith(prefix)]


def cage_strand_indices() -> tuple[list[int], list[int]]:
    """Indices of the plus- and minus-strand CAGE tracks (identifiers end in + / -)."""
    plus = [i for i, n in enumerate(track_names()) if n.startswith("CAGE") and n.endswith("+]")]
    minus = [i for i, n in enumerate(track_names()) if n.startswith("CAGE") and n.endswith("-]")]
    return plus, minus


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


def codes_to_one_hot(codes: np.ndarray) -> np.ndarray:
    """uint8 codes (..., L) -> one-hot float32 (..., 4, L); N is all zeros (as in gReLU)."""
    codes = np.asarray(codes)
    eye = np.concatenate([np.eye(4, dtype=np.float32), np.zeros((1, 4), np.float32)])
    return np.moveaxis(eye[np.minimum(codes, 4)], -1, -2)


def seq_to_codes(seq: str) -> np.ndarray:
    """DNA string -> uint8 codes (A0 C1 G2 T3, anything else N=4)."""
    return _CODE[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]


def codes_to_seq(codes: np.ndarray) -> str:
    """uint8 codes -> DNA string."""
    return np.frombuffer(b"ACGTN", dtype=np.uint8)[np.minimum(codes, 4)].tobytes().decode()


def open_fasta(path: str | os.PathLike, field: str = "--fasta"):
    """Open an indexed FASTA with pyfaidx, building the index if it is missing.

    Raises
    ------
    GenoclInputError
        Missing file, or a FASTA pyfaidx cannot index (e.g. gzip that is not bgzip).
    """
    import pyfaidx

    path = Path(path)
    if not path.exists():
        raise input_error(path, field, "FASTA not found", "pass an existing FASTA file")
    try:
        return pyfaidx.Fasta(str(path), as_raw=True, sequence_always_upper=True, rebuild=False)
    except Exception as err:
        raise input_error(
            path, field, f"cannot index FASTA ({type(err).__name__}: {err})".replace("\n", " "),
            "decompress it or recompress with `bgzip`, then `samtools faidx`",
        ) from None


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
    hit = find_window(chrom, max(start, 0), max(start, 0) + 1) or find_window(chrom, end - 1, end)
    if hit is None:
        return out
    split, i, w_start = hit
    seq = load_windows()[f"{split}_seq"][i]
    lo, hi = max(start, w_start), min(end, w_start + WINDOW_LEN)
    out[lo - start : hi - start] = seq[lo - w_start : hi - w_start]
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
