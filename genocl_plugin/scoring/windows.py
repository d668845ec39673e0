"""The REF / ALT input sequences of one variant, and the allele checks before it is scored.

Sequence convention (the one baskerville/Borzoi, tangermeme/bpnet-lite and kipoiseq use):
the input window of ``seq_len`` bp starts at ``POS - seq_len // 2`` (0-based), so the first
REF base sits at index ``seq_len // 2 - 1`` -- exactly where gReLU's ``VariantDataset`` puts an
SNV. The ALT window keeps the same left flank, puts the ALT allele in place of REF, and fills
the right side from the genome: a deletion reads further right, an insertion pushes the right
end out of the window. Everything left of the variant is aligned base-for-base between REF
and ALT; positions right of it are shifted by the length difference. See docs/scoring.md.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

import numpy as np

from genocl_plugin.data import reference
from genocl_plugin.scoring.vcf import _strip_chr

SKIP_REASONS = ("ref_mismatch", "symbolic", "star", "no_alt", "invalid_allele", "too_long")
_ALLELE = re.compile(r"[ACGTN]+")
_BASE_CODE = {"A": 0, "C": 1, "G": 2, "T": 3}


def allele_problem(ref: str, alt: str, max_len: int) -> str | None:
    """Why an allele cannot be scored (one of :data:`SKIP_REASONS`), or None if it can.

    Parameters
    ----------
    ref, alt
        VCF REF and one ALT allele.
    max_len
        Longest allele that fits (half the input window, so it can sit at the centre).
    """
    if alt == "*":
        return "star"
    if alt.startswith("<") or "[" in alt or "]" in alt:
        return "symbolic"
    if alt in (".", ""):
        return "no_alt"
    if not _ALLELE.fullmatch(ref) or not _ALLELE.fullmatch(alt):
        return "invalid_allele"
    if max(len(ref), len(alt)) > max_len:
        return "too_long"
    return None


def contig_aliases(names: Iterable[str]) -> dict[str, str]:
    """Map VCF contig spellings to FASTA contig names: ``1`` <-> ``chr1``, ``MT`` <-> ``chrM``.

    An exact name always wins over an alias.
    """
    names = list(names)
    aliases: dict[str, str] = {}
    for name in names:
        bare = _strip_chr(name)
        for alias in (bare, f"chr{bare}"):
            aliases.setdefault(alias, name)
        if bare in ("M", "MT"):
            for alias in ("M", "MT", "chrM", "chrMT"):
                aliases.setdefault(alias, name)
    aliases.update({name: name for name in names})
    return aliases


def genome_reader(fasta, block: int = 1 << 20) -> Callable[[str, int, int], np.ndarray]:
    """A ``fetch(contig, start, end)`` returning uint8 codes, N-padded outside the contig.

    It reads the FASTA a block (1 Mb) at a time and keeps the last block, so a sorted VCF
    reads each base about once instead of one pyfaidx call per variant.

    Parameters
    ----------
    fasta
        An open ``pyfaidx.Fasta`` (:func:`genocl_plugin.data.reference.open_fasta`).
    block
        Minimum bp read per FASTA access.
    """
    lengths = {name: len(fasta[name]) for name in fasta.keys()}
    cache = {"contig": None, "start": 0, "codes": np.empty(0, dtype=np.uint8)}

    def fetch(contig: str, start: int, end: int) -> np.ndarray:
        out = np.full(end - start, 4, dtype=np.uint8)
        lo, hi = max(start, 0), min(end, lengths[contig])
        if hi <= lo:
            return out
        c_start = cache["start"]
        if cache["contig"] != contig or lo < c_start or hi > c_start + len(cache["codes"]):
            c_end = min(lengths[contig], max(hi, lo + block))
            cache.update(contig=contig, start=lo,
                         codes=reference.seq_to_codes(str(fasta[contig][lo:c_end])))
            c_start = lo
        out[lo - start : hi - start] = cache["codes"][lo - c_start : hi - c_start]
        return out

    return fetch


def variant_windows(contig: str, pos: int, ref: str, alt: str, fasta,
                    seq_len: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The REF and ALT input windows of one variant (uint8 codes, N-padded at contig ends).

    The first REF base is at index ``seq_len // 2 - 1``; the ALT window shares the left flank
    and is filled on the right from the genome (see the module docstring). The REF window
    carries the VCF REF allele, as gReLU's ``VariantDataset`` does, so a REF that disagrees
    with the FASTA (scored only with ``allow_ref_mismatch``) is scored as written.

    Parameters
    ----------
    contig
        FASTA contig name.
    pos
        1-based VCF POS.
    ref, alt
        Alleles (A/C/G/T/N).
    fasta
        An open ``pyfaidx.Fasta``, or a reader from :func:`genome_reader` (faster in loops).
    seq_len
        Model input length.

    Returns
    -------
    tuple
        ``ref_codes`` (seq_len,), ``alt_codes`` (seq_len,), and the FASTA bases under REF
        (upper case, N outside the contig) for the REF check.
    """
    fetch = fasta if callable(fasta) else functools.partial(_fetch_codes, fasta=fasta)
    centre = seq_len // 2 - 1
    start = pos - 1 - centre
    extra = max(0, len(ref) - len(alt))
    chunk = fetch(contig, start, start + seq_len + extra)
    if len(ref) == 1 and len(alt) == 1:  # SNV fast path: most of any VCF, same result
        genome_ref = "ACGTN"[chunk[centre]]
        chunk[centre] = _BASE_CODE.get(ref, 4)
        alt_codes = chunk.copy()
        alt_codes[centre] = _BASE_CODE.get(alt, 4)
        return chunk, alt_codes, genome_ref
    genome_ref = reference.codes_to_seq(chunk[centre : centre + len(ref)])
    ref_codes = chunk[:seq_len].copy()
    ref_codes[centre : centre + len(ref)] = reference.seq_to_codes(ref)
    alt_codes = np.concatenate([chunk[:centre], reference.seq_to_codes(alt),
                                chunk[centre + len(ref) :]])[:seq_len]
    return ref_codes, alt_codes, genome_ref


def _fetch_codes(contig: str, start: int, end: int, fasta) -> np.ndarray:
    return reference.fetch_codes(contig, start, end, fasta)
