"""DNA sequences as genocl holds them: uint8 codes, one-hot arrays and indexed FASTA files.

Sequences are uint8 codes (A=0, C=1, G=2, T=3, anything else N=4); models take one-hot
float32 arrays (..., 4, L) in which N is all zeros, as in gReLU. :func:`open_fasta` opens a
user's genome with pyfaidx.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from genocl_plugin.errors import input_error

# uint8 codes of the bundled sequences: 0=A 1=C 2=G 3=T 4=N
_CODE = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _CODE[_b] = _i
    _CODE[ord(chr(_b).lower())] = _i


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
