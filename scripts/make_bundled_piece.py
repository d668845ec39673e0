"""Write genocl_plugin/bundled/hg38_chr2_piece.npz: 524,288 bp of real hg38 chr2.

Source: UCSC hg38 chr2:1-2,333,275 (``genome/chr2_1-2333275.fa.gz`` of the shared data
snapshot; bfairkun/my_utils tests/data, BSD-3-Clause). The piece is chr2:10,001-534,288
(1-based), the first 524,288 bp after the telomere gap; it has no N. Stored 2-bit packed
(A0 C1 G2 T3, 4 codes per byte, most significant bits first) with np.savez_compressed.

Usage: python scripts/make_bundled_piece.py /path/to/shared/data
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pyfaidx

from genocl_plugin.data import reference

CHROM, START, LENGTH = "chr2", 10_000, 524_288


def main(shared: str) -> None:
    fasta = pyfaidx.Fasta(str(Path(shared) / "genome" / "chr2_1-2333275.fa.gz"), as_raw=True,
                          sequence_always_upper=True)
    seq = fasta[CHROM][START : START + LENGTH]
    codes = reference.seq_to_codes(seq)
    if (codes > 3).any():
        raise SystemExit("the piece holds N; 2-bit packing needs A/C/G/T only")
    packed = np.packbits(np.unpackbits(codes[:, None], axis=1)[:, 6:].reshape(-1))
    out = Path(reference.BUNDLED_PIECE)
    np.savez_compressed(out, packed=packed, chrom=CHROM, start=START, length=LENGTH,
                        sha256=hashlib.sha256(seq.encode("ascii")).hexdigest())
    print(f"wrote {out} ({out.stat().st_size:,} bytes): {CHROM}:{START + 1}-{START + LENGTH}")


if __name__ == "__main__":
    main(sys.argv[1])
