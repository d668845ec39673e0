"""Score the variants of a VCF with a sequence-to-function model.

The public API follows gReLU's ``grelu/variant.py``: a handful of plain functions.

- :func:`read_header` / :func:`read_variants`: stream a VCF / BCF, one :class:`Variant` per
  ALT allele (multi-allelic records are split), optionally one ``--region`` or one
  ``--shard i/n`` of it. Never loads the whole file.
- :func:`allele_problem`, :func:`variant_windows`: the allele checks and the REF / ALT input
  sequences of one variant.
- :func:`score_variants`: a DataFrame of variants -> AnnData of scores (like gReLU's
  ``predict_variant_effects``).
- :func:`score_vcf`: VCF -> scores file (``.tsv``, ``.vcf.gz`` + ``.tbi``, ``.h5ad``), streamed in
  batches with bounded memory, written to a temporary name and renamed only when complete.

Sequence convention (the one baskerville/Borzoi, tangermeme/bpnet-lite and kipoiseq use):
the input window of ``seq_len`` bp starts at ``POS - seq_len // 2`` (0-based), so the first
REF base sits at index ``seq_len // 2 - 1`` -- exactly where gReLU's ``VariantDataset`` puts an
SNV. The ALT window keeps the same left flank, puts the ALT allele in place of REF, and fills
the right side from the genome: a deletion reads further right, an insertion pushes the right
end out of the window. Everything left of the variant is aligned base-for-base between REF
and ALT; positions right of it are shifted by the length difference. See docs/scoring.md.

Scores, per selected track (or summed over the selection with ``aggregate=True``), from the
predicted coverage summed over the output positions of a window centred on the variant:
``diff = alt - ref`` and ``log2fc = log2(alt / ref)``. With ``rc=True`` the predictions of both
strands are averaged before comparing (the reverse-strand output is flipped back and stranded
track pairs such as ``[...+]`` / ``[...-]`` are swapped).
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import gzip
import math
import os
import re
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from genocl_plugin.data import reference
from genocl_plugin.data.fileio import atomic_path, clean_stale, crash_point
from genocl_plugin.errors import GenoclInputError, input_error
from genocl_plugin.progress import Progress, stage

SCORES = ("diff", "log2fc")
OUTPUT_SUFFIXES = (".tsv", ".tsv.gz", ".vcf", ".vcf.gz", ".vcf.bgz", ".h5ad")
SKIP_REASONS = ("ref_mismatch", "symbolic", "star", "no_alt", "invalid_allele", "too_long")
VCF_COLUMNS = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
# The 28-byte empty block that ends every complete BGZF file (SAM/BAM spec, section 4.1.2).
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_ALLELE = re.compile(r"[ACGTN]+")
_BASE_CODE = {"A": 0, "C": 1, "G": 2, "T": 3}


class VariantWarning(UserWarning):
    """Input that was repaired rather than rejected (the CLI prints these as warnings)."""


class Variant(NamedTuple):
    """One ALT allele of one VCF record (multi-allelic records give one per ALT)."""

    chrom: str
    pos: int  # 1-based, as in the VCF
    id: str
    ref: str
    alt: str
    qual: str = "."
    filter: str = "."
    info: str = "."
    record: int = 0  # 0-based index of the data record in the file (or region)
    allele: int = 1  # 1-based index of this ALT in the record


# ---------------------------------------------------------------------------------------------
# Reading VCF / BCF
# ---------------------------------------------------------------------------------------------


def read_header(vcf: str | os.PathLike) -> list[str]:
    """The header lines of a VCF / BCF (``##`` meta lines and the ``#CHROM`` line).

    A file whose ``##fileformat`` line is present but whose ``#CHROM`` line is missing (as in
    some sites-only eQTL files) gets the standard 8-column line, with a warning.

    Raises
    ------
    GenoclInputError
        Missing file, not a VCF (no header), corrupt or truncated compression.
    """
    with _open_records(vcf) as (header, _):
        return header


def read_variants(vcf: str | os.PathLike, region: str | None = None,
                  shard: tuple[int, int] | None = None) -> Iterator[Variant]:
    """Stream the ALT alleles of a VCF / BCF, splitting multi-allelic records.

    Plain, gzip and bgzip VCF text is parsed here rather than by htslib, because htslib
    rejects the 7-column sites-only VCFs real eQTL and kipoiseq files use and reads a
    truncated plain-gzip VCF without an error. BCF is read with cyvcf2.

    Parameters
    ----------
    vcf
        ``.vcf``, ``.vcf.gz`` (gzip or bgzip) or ``.bcf``.
    region
        ``chrom``, ``chrom:start`` or ``chrom:start-end`` (1-based, inclusive; a record belongs
        to the region its POS is in, so adjacent regions never share a record). ``chr1`` and
        ``1`` are the same contig. Uses the ``.tbi`` / ``.csi`` index when there is one,
        otherwise filters while streaming.
    shard
        ``(i, n)`` with ``1 <= i <= n``: keep the records whose index ``k`` (0-based, within
        the region) has ``k % n == i - 1``. All alleles of a record stay in one shard.

    Yields
    ------
    Variant
        One per ALT allele, alleles upper-cased.

    Raises
    ------
    GenoclInputError
        Not a VCF, truncated / corrupt compression, a malformed record (line number given).
    """
    parsed_region = parse_region(region) if region else None
    with _open_records(vcf, parsed_region) as (_, lines):
        record = -1
        for line_no, line in lines:
            fields = line.rstrip("\r\n").split("\t", 8)
            if len(fields) < 5:
                raise input_error(vcf, f"line {line_no}", f"{len(fields)} tab-separated columns",
                                  "a VCF record needs CHROM POS ID REF ALT separated by tabs")
            try:
                pos = int(fields[1])
            except ValueError:
                raise input_error(vcf, f"line {line_no}: POS", f"{fields[1]!r} is not an integer",
                                  "fix or drop the record") from None
            if parsed_region and not _in_region(fields[0], pos, parsed_region):
                continue
            record += 1
            if shard and record % shard[1] != shard[0] - 1:
                continue
            rest = [(fields[i] if len(fields) > i and fields[i] else ".") for i in (5, 6, 7)]
            ref = fields[3].upper()
            for allele, alt in enumerate(fields[4].split(","), start=1):
                yield Variant(fields[0], pos, fields[2], ref, alt.upper(), *rest, record, allele)


def parse_region(region: str) -> tuple[str, int, int]:
    """``chrom[:start[-end]]`` (1-based, inclusive, commas allowed) -> ``(chrom, start, end)``."""
    match = re.fullmatch(r"([^:\s]+)(?::([\d,]+)(?:-([\d,]+))?)?", region.strip())
    if not match:
        raise input_error(region, "--region", "not chrom, chrom:start or chrom:start-end",
                          "e.g. --region chr1:1000000-2000000")
    chrom, start, end = match.groups()
    start_i = int(start.replace(",", "")) if start else 1
    end_i = int(end.replace(",", "")) if end else (start_i if start else 2**62)
    if end_i < start_i:
        raise input_error(region, "--region", "end before start", "e.g. --region chr1:100-200")
    return chrom, start_i, end_i


def parse_shard(shard: str) -> tuple[int, int]:
    """``"i/n"`` (1-based) -> ``(i, n)``."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", shard)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise input_error(shard, "--shard", "not i/n with 1 <= i <= n", "e.g. --shard 3/10")
    return int(match.group(1)), int(match.group(2))


def _in_region(chrom: str, pos: int, region: tuple[str, int, int]) -> bool:
    return _strip_chr(chrom) == _strip_chr(region[0]) and region[1] <= pos <= region[2]


def _strip_chr(name: str) -> str:
    return name[3:] if name.lower().startswith("chr") else name


@contextlib.contextmanager
def _open_records(vcf, region=None):
    """Yield ``(header_lines, iterator of (line_no, record_line))``; errors become input errors."""
    path = Path(vcf)
    if not path.is_file():
        raise input_error(path, "--vcf", "file not found", "pass an existing .vcf, .vcf.gz or .bcf")
    compression = _compression(path)
    if compression == "bgzf" and not _has_bgzf_eof(path):
        raise input_error(path, "--vcf", "truncated bgzip file (no BGZF end-of-file block)",
                          "re-download it or re-create it with `bgzip`")
    if compression != "none" and _starts_with(path, b"BCF"):
        with _open_bcf(path, region) as opened:
            yield opened
        return
    try:
        handle = gzip.open(path, "rt") if compression != "none" else open(path)  # noqa: SIM115
    except OSError as err:
        raise input_error(path, "--vcf", f"cannot open ({err})", "pass a readable VCF") from None
    try:
        header, first = _read_text_header(handle, path)
        lines = _text_records(handle, path, first, len(header))
        if region is not None and compression == "bgzf":
            lines = _tabix_records(path, region) or lines
        yield header, lines
    except (EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError) as err:
        raise _corrupt(path, err) from None
    finally:
        handle.close()


def _corrupt(path: Path, err: Exception) -> GenoclInputError:
    if isinstance(err, EOFError):
        return input_error(path, "--vcf", "truncated gzip file (ends before the end-of-stream marker)",
                           "re-download it or re-create it with `bgzip`")
    return input_error(path, "--vcf", f"corrupt file ({type(err).__name__})",
                       "re-download it, or check it is a VCF (`zcat | head`)")


def _compression(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(18)
    if head[:2] != b"\x1f\x8b":
        return "none"
    # BGZF = gzip with the "BC" extra subfield (FLG.FEXTRA set).
    return "bgzf" if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC" else "gzip"


def _has_bgzf_eof(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - len(BGZF_EOF)))
        return handle.read() == BGZF_EOF


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read(len(magic)) == magic
    except (OSError, EOFError, zlib.error):
        return False


def _read_text_header(handle, path: Path) -> tuple[list[str], str | None]:
    header, first = [], None
    for line in handle:
        if line.startswith("#"):
            header.append(line.rstrip("\r\n"))
            if line.startswith("#CHROM"):
                break
        elif line.strip():
            first = line
            break
    has_format = bool(header) and header[0].startswith("##fileformat=VCF")
    has_columns = bool(header) and header[-1].startswith("#CHROM")
    if not has_format and not has_columns:
        raise input_error(path, "--vcf", "no VCF header",
                          "the file must start with ##fileformat=VCFv4.2 and a #CHROM line")
    if not has_columns:
        warnings.warn(f"{path}: no #CHROM header line; assuming the standard VCF columns",
                      VariantWarning, stacklevel=3)
        header.append("\t".join(VCF_COLUMNS))
    if not has_format:
        header.insert(0, "##fileformat=VCFv4.2")
    return header, first


def _text_records(handle, path: Path, first: str | None, n_header: int) -> Iterator[tuple[int, str]]:
    line_no = n_header
    try:
        if first is not None:
            line_no += 1
            yield line_no, first
        for line in handle:
            line_no += 1
            if line.strip() and not line.startswith("#"):
                yield line_no, line
    except (EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError) as err:
        raise _corrupt(path, err) from None


def _tabix_records(path: Path, region: tuple[str, int, int]) -> Iterator[tuple[int, str]] | None:
    """Records of a region through the tabix index, or None when there is no usable index."""
    if not (Path(f"{path}.tbi").exists() or Path(f"{path}.csi").exists()):
        return None
    import pysam

    try:
        tabix = pysam.TabixFile(str(path))
    except OSError:
        return None
    names = {_strip_chr(c): c for c in tabix.contigs}
    contig = names.get(_strip_chr(region[0]))

    def lines():
        try:
            if contig is not None:
                # tabix is 0-based half-open; our region is 1-based inclusive on POS.
                yield from enumerate(tabix.fetch(contig, region[1] - 1, min(region[2], 2**31 - 1)))
        finally:
            tabix.close()

    return lines()


@contextlib.contextmanager
def _open_bcf(path: Path, region):
    import cyvcf2

    try:
        vcf = cyvcf2.VCF(str(path))
    except Exception as err:
        raise input_error(path, "--vcf", f"cannot read BCF ({err})".replace("\n", " "),
                          "check it with `bcftools view -h`") from None
    header = vcf.raw_header.rstrip("\n").split("\n")
    records = vcf
    if region is not None and (Path(f"{path}.csi").exists() or Path(f"{path}.tbi").exists()):
        names = {_strip_chr(c): c for c in vcf.seqnames}
        contig = names.get(_strip_chr(region[0]), region[0])
        records = vcf(f"{contig}:{region[1]}-{min(region[2], 2**31 - 1)}")

    def lines():
        line_no = len(header)
        try:
            for line_no, record in enumerate(records, start=len(header) + 1):  # noqa: B007
                yield line_no, str(record)
        except Exception as err:  # cyvcf2 raises a bare Exception for a bad record
            raise input_error(path, f"record after line {line_no}", f"unreadable BCF record ({err})",
                              "check the file with `bcftools view`") from None

    try:
        yield header, lines()
    finally:
        vcf.close()


# ---------------------------------------------------------------------------------------------
# Alleles and sequences
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Tracks, windows and the scoring plan
# ---------------------------------------------------------------------------------------------


def select_tracks(task_names: list[str], tracks: Iterable[str | int] | None = None,
                  field: str = "--tracks") -> list[int]:
    """Indices of the requested tracks.

    Each request is an index (``5``), comma-separated indices (``0,3,7``), an exact track
    name, or a shell pattern over names (``CAGE:*``). None selects every track.

    Raises
    ------
    GenoclInputError
        A request matching no track of the model.
    """
    if not tracks:
        return list(range(len(task_names)))
    selected: list[int] = []
    for request in tracks:
        text = str(request).strip()
        if text in task_names:
            hits = [task_names.index(text)]
        elif re.fullmatch(r"\d+(\s*,\s*\d+)*", text):
            hits = [int(x) for x in text.split(",")]
            bad = [i for i in hits if i >= len(task_names)]
            if bad:
                raise input_error(text, field, f"track index {bad[0]} out of range",
                                  f"the model has tracks 0..{len(task_names) - 1}")
        else:
            hits = [i for i, name in enumerate(task_names) if fnmatch.fnmatchcase(name, text)]
        if not hits:
            shown = ", ".join(repr(n) for n in task_names[:3])
            raise input_error(text, field, "the model has no such track",
                              f"pass an index 0..{len(task_names) - 1}, an exact name "
                              f"(e.g. {shown}) or a pattern like 'CAGE:*'")
        selected += [i for i in hits if i not in selected]
    return selected


def strand_pairs(task_names: list[str]) -> np.ndarray:
    """For each track, the index of its opposite-strand partner (itself if unstranded).

    Partners are names that differ only by ``plus``/``minus`` or a final ``+``/``-`` (also
    before a closing ``]``), as in FANTOM5 CAGE descriptions and ProCapNet's two strands.
    """
    index = {name: i for i, name in enumerate(task_names)}
    partner = np.arange(len(task_names))
    for i, name in enumerate(task_names):
        for a, b in (("plus", "minus"), ("minus", "plus")):
            if a in name and name.replace(a, b) in index:
                partner[i] = index[name.replace(a, b)]
        match = re.search(r"([+-])(\]?)$", name)
        if match:
            flipped = name[: match.start()] + ("-" if match.group(1) == "+" else "+") + match.group(2)
            partner[i] = index.get(flipped, partner[i])
    return partner


def window_bins(model, seq_len: int, window: int | None = None) -> tuple[int, int]:
    """Output positions ``[lo, hi)`` covering ``window`` bp centred on the variant.

    None (or a window wider than the output) is every output position. The window is centred
    on the first REF base (input index ``seq_len // 2 - 1``) and always keeps at least the
    output position containing it.
    """
    n_out = model.output_length(seq_len)
    if window is None:
        return 0, n_out
    bin_size = model.bin_size
    offset = (seq_len - n_out * bin_size) // 2
    centre = seq_len // 2 - 1 + 0.5 - offset  # bp from the first output position
    lo = max(0, math.floor((centre - window / 2) / bin_size))
    hi = min(n_out, math.ceil((centre + window / 2) / bin_size))
    if hi <= lo:
        lo = min(max(0, math.floor(centre / bin_size)), n_out - 1)
        hi = lo + 1
    return lo, hi


class ScoringPlan(NamedTuple):
    """What to compute for every variant (built once by :func:`scoring_plan`)."""

    seq_len: int
    tracks: list[int]
    partners: list[int]  # strand partner of each selected track (for rc)
    bins: tuple[int, int]
    n_out: int
    aggregate: bool
    scores: tuple[str, ...]
    labels: list[str]  # track labels of the score columns


def scoring_plan(model, tracks: Iterable[str | int] | None = None, window: int | None = None,
                 aggregate: bool = False, scores: Iterable[str] = SCORES) -> ScoringPlan:
    """Resolve tracks, window and scores against a model (input errors for bad requests)."""
    seq_len = int(model.seq_len)
    scores = tuple(scores)
    bad = [s for s in scores if s not in SCORES]
    if bad or not scores:
        raise input_error(",".join(scores), "--scores", f"unknown score {bad[0] if bad else ''!r}",
                          f"use any of {', '.join(SCORES)}")
    if window is not None and window <= 0:
        raise input_error(window, "--window", "must be a positive number of bp", "e.g. --window 1024")
    names = list(model.task_names)
    selected = select_tracks(names, tracks)
    partners = strand_pairs(names)
    labels = ["aggregate"] if aggregate else [names[i] for i in selected]
    return ScoringPlan(seq_len, selected, [int(partners[i]) for i in selected],
                       window_bins(model, seq_len, window), model.output_length(seq_len),
                       aggregate, scores, labels)


def column_names(plan: ScoringPlan, model_name: str) -> list[str]:
    """kipoi-veff2 score columns: ``<model>/<track>/<score>``, score-major."""
    return [f"{model_name}/{label}/{score}" for score in plan.scores for label in plan.labels]


# ---------------------------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------------------------


def check_devices(devices: str | int | None) -> list[int] | None:
    """``--devices`` checked: None for ``cpu``, else the GPU ids (``cuda`` is ``[0]``).

    torch is imported only when a GPU is asked for on a machine that has a GPU device, so a bad
    or impossible request is refused before the model (and torch) is loaded.

    Raises
    ------
    GenoclInputError
        Not cpu / cuda / GPU indices, or a GPU that does not exist.
    """
    from genocl_plugin.training.hardware import cuda_available

    text = str(devices if devices is not None else "cpu").strip().lower()
    if text == "cpu":
        return None
    ids = [0] if text in ("cuda", "gpu") else None
    if ids is None:
        if not re.fullmatch(r"\d+(\s*,\s*\d+)*", text):
            raise input_error(devices, "--devices", "not cpu, cuda or GPU indices",
                              "e.g. --devices cpu, --devices 0 or --devices 0,1")
        ids = [int(x) for x in text.split(",")]
    unavailable = not cuda_available()
    if not unavailable:
        import torch

        unavailable = max(ids) >= torch.cuda.device_count()
    if unavailable:
        raise input_error(devices, "--devices", "requested GPU is not available",
                          "use --devices cpu, or a GPU index listed by nvidia-smi")
    return ids


def parse_devices(devices: str | int | None):
    """``cpu``, ``cuda``, ``0`` or ``0,1`` -> ``(torch.device, [gpu ids] or None)``."""
    ids = check_devices(devices)
    import torch

    if ids is None:
        return torch.device("cpu"), None
    return torch.device(f"cuda:{ids[0]}"), ids


def prepare_model(model, devices: str | int | None = "cpu") -> tuple[Callable, object]:
    """Put a model in eval mode on the device(s); returns ``(forward, device)``.

    Several GPUs split each batch with ``torch.nn.DataParallel``.
    """
    import torch

    device, ids = parse_devices(devices)
    model.eval().to(device)
    forward = torch.nn.DataParallel(model, device_ids=ids) if ids and len(ids) > 1 else model
    return forward, device


def predict_window_sums(forward: Callable, codes: np.ndarray, plan: ScoringPlan, rc: bool = False,
                        device=None, batch_size: int = 64) -> np.ndarray:
    """Predicted coverage of the planned tracks, summed over the planned window.

    Parameters
    ----------
    forward
        The model (or its DataParallel wrapper), returning coverage (B, tracks, positions).
    codes
        (n, seq_len) uint8 sequence codes.
    plan
        From :func:`scoring_plan`.
    rc
        Average with the reverse-complement prediction (flipped back, strand pairs swapped).
    device
        Where to run.
    batch_size
        Sequences per forward pass.

    Returns
    -------
    np.ndarray
        (n, len(plan.tracks)) float64.
    """
    import torch

    lo, hi = plan.bins
    tracks = torch.as_tensor(plan.tracks)
    partners = torch.as_tensor(plan.partners)
    out = np.empty((len(codes), len(plan.tracks)), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(codes), batch_size):
            x = _one_hot(torch.from_numpy(codes[start : start + batch_size]).to(device))
            pred = forward(x)
            sums = pred[:, tracks, lo:hi].double().sum(-1)
            if rc:
                # reversed output position j is forward position n_out - 1 - j
                pred_rc = forward(x.flip(1, 2))
                rc_sums = pred_rc[:, partners, plan.n_out - hi : plan.n_out - lo].double().sum(-1)
                sums = (sums + rc_sums) / 2
            out[start : start + len(x)] = sums.cpu().numpy()
    return out


def _one_hot(codes):
    """uint8 codes (B, L) on any device -> float32 one-hot (B, 4, L); N (4) is all zeros."""
    import torch

    return torch.nn.functional.one_hot(codes.long(), 5)[..., :4].transpose(1, 2).float().contiguous()


def compare(ref_sums: np.ndarray, alt_sums: np.ndarray, plan: ScoringPlan) -> np.ndarray:
    """Scores (n, len(plan.scores) * n_labels), score-major like :func:`column_names`."""
    if plan.aggregate:
        ref_sums = ref_sums.sum(1, keepdims=True)
        alt_sums = alt_sums.sum(1, keepdims=True)
    parts = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for score in plan.scores:
            parts.append(alt_sums - ref_sums if score == "diff" else np.log2(alt_sums / ref_sums))
    return np.concatenate(parts, axis=1)


# ---------------------------------------------------------------------------------------------
# The scoring loop
# ---------------------------------------------------------------------------------------------


def score_batches(variants: Iterable[Variant], model, fasta, plan: ScoringPlan, rc: bool = False,
                  batch_size: int = 64, devices: str | int | None = "cpu",
                  allow_ref_mismatch: bool = False,
                  on_skip: Callable[[Variant, str, str], None] | None = None,
                  fasta_path: object = "--fasta") -> Iterator[tuple[list[Variant], np.ndarray]]:
    """Score a stream of variants in batches: yields ``(variants, scores)`` per batch.

    Only one batch of sequences is in memory at a time. Alleles that cannot be scored go to
    ``on_skip(variant, reason, detail)`` and are not yielded. REF alleles that disagree with
    the FASTA are skipped (reason ``ref_mismatch``) unless ``allow_ref_mismatch``, in which
    case they are scored and still reported to ``on_skip`` with reason
    ``ref_mismatch_scored``.

    Raises
    ------
    GenoclInputError
        A VCF contig absent from the FASTA (``chr1`` / ``1`` spellings are matched).
    """
    forward, device = prepare_model(model, devices)
    aliases = contig_aliases(fasta.keys())
    fetch = genome_reader(fasta)
    max_len = plan.seq_len // 2
    on_skip = on_skip or (lambda *_: None)
    batch: list[Variant] = []
    windows: list[np.ndarray] = []  # distinct input sequences of the batch
    index: dict[tuple, int] = {}  # (contig, pos, ref[, alt]) -> row of windows
    pairs: list[tuple[int, int]] = []  # (REF row, ALT row) of each batched allele

    def row(key: tuple, window: np.ndarray) -> int:
        # Alleles of one site share the REF window, and a site scored for several elements or
        # samples repeats its ALT window: each distinct sequence is predicted once per batch.
        if key not in index:
            index[key] = len(windows)
            windows.append(window)
        return index[key]

    def flush() -> np.ndarray:
        sums = predict_window_sums(forward, np.stack(windows), plan, rc=rc, device=device,
                                   batch_size=batch_size)
        ref_rows, alt_rows = (list(x) for x in zip(*pairs, strict=True))
        return compare(sums[ref_rows], sums[alt_rows], plan)

    for variant in variants:
        problem = allele_problem(variant.ref, variant.alt, max_len)
        if problem:
            on_skip(variant, problem, f"{variant.ref}>{variant.alt}")
            continue
        contig = aliases.get(variant.chrom)
        if contig is None:
            shown = ", ".join(list(fasta.keys())[:5])
            raise input_error(fasta_path, "contig", f"VCF contig {variant.chrom!r} is not in the FASTA "
                              f"(it has {shown})", "use the FASTA of the VCF's assembly, or "
                              "restrict the VCF with --region")
        ref_window, alt_window, genome_ref = variant_windows(
            contig, variant.pos, variant.ref, variant.alt, fetch, plan.seq_len)
        if genome_ref != variant.ref or "N" in genome_ref:  # docs/scoring.md: a FASTA N is a mismatch
            detail = f"VCF REF {variant.ref}, FASTA {contig}:{variant.pos} has {genome_ref}"
            if not allow_ref_mismatch:
                on_skip(variant, "ref_mismatch", detail)
                continue
            on_skip(variant, "ref_mismatch_scored", detail)
        key = (contig, variant.pos, variant.ref)
        pairs.append((row(key, ref_window), row((*key, variant.alt), alt_window)))
        batch.append(variant)
        if len(batch) >= batch_size:
            yield batch, flush()
            batch = []  # a new list: the yielded one belongs to the caller now
            windows.clear()
            pairs.clear()
            index.clear()
    if batch:
        yield batch, flush()


def score_variants(variants: pd.DataFrame, model, fasta: str | os.PathLike,
                   tracks: Iterable[str | int] | None = None, window: int | None = None,
                   aggregate: bool = False, rc: bool = False, batch_size: int = 64,
                   devices: str | int | None = "cpu", allow_ref_mismatch: bool = False):
    """Score a table of variants in memory (the analogue of gReLU's ``predict_variant_effects``).

    Parameters
    ----------
    variants
        Columns ``chrom``, ``pos`` (1-based), ``ref``, ``alt`` (one allele per row).
    model
        A loaded genocl / gReLU model.
    fasta
        Genome FASTA (plain or bgzip; the index is built if missing).
    tracks, window, aggregate, rc, batch_size, devices, allow_ref_mismatch
        As in :func:`score_vcf`.

    Returns
    -------
    anndata.AnnData
        ``obs`` = the scored variants, ``var`` = tracks, ``X`` = ``diff``,
        ``layers["log2fc"]``; ``uns["skipped"]`` lists the rows not scored and why.
    """
    import anndata

    plan = scoring_plan(model, tracks, window, aggregate)
    genome = reference.open_fasta(fasta)
    rows = [Variant(str(r.chrom), int(r.pos), str(getattr(r, "id", ".")), str(r.ref).upper(),
                    str(r.alt).upper(), record=i) for i, r in enumerate(variants.itertuples())]
    skipped: list[tuple[int, str, str]] = []
    kept, chunks = [], []
    for batch, scores in score_batches(rows, model, genome, plan, rc=rc, batch_size=batch_size,
                                       devices=devices, allow_ref_mismatch=allow_ref_mismatch,
                                       on_skip=lambda v, r, d: skipped.append((v.record, r, d)),
                                       fasta_path=fasta):
        kept += [v.record for v in batch]
        chunks.append(scores)
    n_labels = len(plan.labels)
    matrix = np.concatenate(chunks) if chunks else np.zeros((0, n_labels * len(plan.scores)))
    obs = variants.iloc[kept].reset_index(drop=True)
    obs.index = obs.index.astype(str)
    var = pd.DataFrame(index=pd.Index(plan.labels, name="name"))
    return anndata.AnnData(
        X=matrix[:, :n_labels].astype(np.float32), obs=obs, var=var,
        layers={"log2fc": matrix[:, n_labels : 2 * n_labels].astype(np.float32)},
        uns={"skipped": pd.DataFrame(skipped, columns=["row", "reason", "detail"])},
    )


def score_vcf(vcf: str | os.PathLike, model, fasta: str | os.PathLike, out: str | os.PathLike,
              tracks: Iterable[str | int] | None = None, window: int | None = None,
              aggregate: bool = False, scores: Iterable[str] = SCORES, rc: bool = False,
              batch_size: int = 64, devices: str | int | None = "cpu", region: str | None = None,
              shard: str | tuple[int, int] | None = None, allow_ref_mismatch: bool = False,
              model_name: str = "model", force: bool = False, progress: bool = False,
              command: str | None = None) -> dict:
    """Score every ALT allele of a VCF and write the scores, streaming in batches.

    Parameters
    ----------
    vcf
        ``.vcf``, ``.vcf.gz`` or ``.bcf``.
    model
        A loaded model (:func:`genocl_plugin.models.load_model`).
    fasta
        Genome FASTA of the VCF's assembly.
    out
        ``.tsv`` (kipoi-veff2 columns ``#CHROM POS ID REF ALT <model>/<track>/<score>``),
        ``.vcf.gz`` (bgzipped, tabix-indexed when sorted; scores in INFO) or ``.h5ad``.
        Written to a temporary name and renamed when complete.
    tracks
        Track indices, names or patterns (default: all tracks).
    window
        bp of output centred on the variant to sum the signal over (default: all output).
    aggregate
        Sum the selected tracks into one score column per score.
    scores
        Any of ``diff`` and ``log2fc``.
    rc
        Average both strands.
    batch_size
        Variants per batch, and sequences per forward pass.
    devices
        ``cpu``, ``cuda`` or GPU indices (``0,1``).
    region
        Only this region (``chr1:1-1000000``).
    shard
        ``"i/n"``: only the i-th of n interleaved record subsets.
    allow_ref_mismatch
        Score variants whose REF disagrees with the FASTA instead of skipping them.
    model_name
        Model name in column / INFO names.
    force
        Replace existing outputs.
    progress
        Show progress on stderr: a bar with variants/s and ETA on a terminal, else a line every
        ``GENOCL_PROGRESS_INTERVAL`` seconds (default 30; :mod:`genocl_plugin.progress`). The
        counting and scoring stages are printed either way.
    command
        The command line, recorded in the output VCF header.

    Returns
    -------
    dict
        Counts (``records``, ``alleles``, ``scored``, ``skipped`` by reason), ``seconds``,
        ``variants_per_s``, ``mismatch_examples``, ``skipped_file``, ``indexed``.
    """
    out = Path(out)
    kind = output_kind(out)
    shard_t = parse_shard(shard) if isinstance(shard, str) else shard
    if batch_size < 1:
        raise input_error(batch_size, "--batch-size", "must be at least 1", "e.g. --batch-size 64")
    plan = scoring_plan(model, tracks, window, aggregate, scores)
    header = read_header(vcf)
    genome = reference.open_fasta(fasta)
    columns = column_names(plan, model_name)
    summary = {"out": str(out), "records": 0, "alleles": 0, "scored": 0,
               "skipped": dict.fromkeys(SKIP_REASONS, 0), "mismatch_examples": [],
               "ref_mismatch_scored": 0}
    last_record = [-1]

    def counted(stream):
        for variant in stream:
            summary["alleles"] += 1
            if variant.record != last_record[0]:
                last_record[0] = variant.record
                summary["records"] += 1
            yield variant

    total = None
    if countable(vcf):  # the alleles to score, for the progress' percentage and ETA
        with stage("counting variants", f"{Path(vcf).name}") as counting:
            total = count_alleles(vcf, region=region, shard=shard_t)
            counting.note = f"{total:,} alleles"
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stack.enter_context(stage("scoring", (f"{total:,} alleles" if total is not None else "alleles")
                                  + f" of {Path(vcf).name} in batches of {batch_size}"))
        write_skip = stack.enter_context(_skipped_sink(out, force))

        def on_skip(variant, reason, detail):
            if reason.startswith("ref_mismatch") and len(summary["mismatch_examples"]) < 5:
                summary["mismatch_examples"].append(
                    f"{variant.chrom}:{variant.pos} {variant.ref}>{variant.alt} ({detail})")
            if reason == "ref_mismatch_scored":
                summary["ref_mismatch_scored"] += 1
            else:
                summary["skipped"][reason] += 1
            write_skip(variant, reason, detail)

        write = stack.enter_context(_open_sink(kind, out, force, columns=columns, plan=plan,
                                               header=header, model_name=model_name,
                                               command=command, summary=summary))
        bar = stack.enter_context(Progress(total, f"scoring {Path(vcf).name}", "variant", enabled=progress))
        stream = counted(read_variants(vcf, region=region, shard=shard_t))
        for batch, batch_scores in score_batches(stream, model, genome, plan, rc=rc,
                                                 batch_size=batch_size, devices=devices,
                                                 allow_ref_mismatch=allow_ref_mismatch,
                                                 on_skip=on_skip, fasta_path=fasta):
            write(batch, batch_scores)
            summary["scored"] += len(batch)
            bar.update(summary["alleles"])  # read so far: scored or skipped
    seconds = time.perf_counter() - start
    summary["seconds"] = seconds
    summary["variants_per_s"] = summary["scored"] / seconds if seconds > 0 else float("nan")
    summary["skipped_total"] = sum(summary["skipped"].values())
    return summary


def output_kind(out: str | os.PathLike) -> str:
    """``tsv``, ``vcf`` or ``h5ad`` from the output file name."""
    name = str(out).lower()
    for suffix, kind in ((".tsv", "tsv"), (".tsv.gz", "tsv"), (".vcf", "vcf"), (".vcf.gz", "vcf"),
                         (".vcf.bgz", "vcf"), (".h5ad", "h5ad")):
        if name.endswith(suffix):
            return kind
    raise input_error(out, "--out", "unknown output format",
                      "name it scores.tsv, scores.vcf.gz or scores.h5ad")


# Files up to this size are read once before scoring to count their alleles (the progress'
# total and ETA): ~0.4 s per 200,000 plain-text records, nothing next to scoring them.
COUNT_MAX_BYTES = 1 << 30


def countable(vcf: str | os.PathLike) -> bool:
    """Whether :func:`score_vcf` counts the file's alleles first (a file of at most ``COUNT_MAX_BYTES``)."""
    try:
        return Path(vcf).stat().st_size <= COUNT_MAX_BYTES
    except OSError:
        return False


def count_alleles(vcf: str | os.PathLike, region: str | None = None,
                  shard: tuple[int, int] | None = None) -> int:
    """The number of ALT alleles :func:`read_variants` yields (warnings are left to the scoring pass)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VariantWarning)
        return sum(1 for _ in read_variants(vcf, region=region, shard=shard))


# ---------------------------------------------------------------------------------------------
# Output files
# ---------------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{value:.7g}"


def _open_sink(kind: str, out: Path, force: bool, **kwargs):
    if kind == "tsv":
        return _tsv_sink(out, force, kwargs["columns"])
    if kind == "vcf":
        return _vcf_sink(out, force, kwargs["header"], kwargs["plan"], kwargs["model_name"],
                         kwargs["command"], kwargs["summary"])
    return _h5ad_sink(out, force, kwargs["plan"], kwargs["model_name"])


@contextlib.contextmanager
def _tsv_sink(out: Path, force: bool, columns: list[str]):
    """kipoi-veff2's table: ``#CHROM POS ID REF ALT <model>/<track>/<score>...``."""
    with atomic_path(out, force=force) as tmp:
        opener = gzip.open if str(out).endswith(".gz") else open
        with opener(tmp, "wt") as handle:
            handle.write("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", *columns]) + "\n")

            def write(batch: list[Variant], scores: np.ndarray) -> None:
                lines = [
                    "\t".join([v.chrom, str(v.pos), v.id, v.ref, v.alt, *map(_fmt, row)])
                    for v, row in zip(batch, scores.tolist(), strict=True)
                ]
                handle.write("\n".join(lines) + "\n")

            yield write


def info_ids(plan: ScoringPlan, model_name: str) -> list[tuple[str, str]]:
    """INFO IDs and descriptions of the score columns (score-major, like the TSV columns).

    IDs are ``<model>_<score>_<track index>`` (``<model>_<score>`` when aggregated): VCF INFO
    keys cannot hold the spaces and brackets of track names, so the names go in Description.
    """
    prefix = re.sub(r"[^0-9A-Za-z_.]", "_", model_name)
    prefix = prefix if re.match(r"[A-Za-z_]", prefix) else f"_{prefix}"
    window = f"output positions {plan.bins[0]}-{plan.bins[1]} of {plan.n_out}"
    ids = []
    for score in plan.scores:
        what = "alt - ref" if score == "diff" else "log2(alt / ref)"
        if plan.aggregate:
            ids.append((f"{prefix}_{score}", f"genocl {model_name} {what} of the summed signal "
                        f"of tracks {_short_list(plan.tracks)} over {window}"))
            continue
        for index, label in zip(plan.tracks, plan.labels, strict=True):
            ids.append((f"{prefix}_{score}_{index}", f"genocl {model_name} {what} of track "
                        f"{index} '{label}' summed over {window}"))
    return [(key, desc.replace('"', "'")) for key, desc in ids]


def _short_list(values: list[int]) -> str:
    text = ",".join(map(str, values[:10]))
    return text + (",..." if len(values) > 10 else "")


@contextlib.contextmanager
def _vcf_sink(out: Path, force: bool, header: list[str], plan: ScoringPlan, model_name: str,
              command: str | None, summary: dict):
    """Sites-only VCF, one record per scored ALT, scores appended to INFO; bgzip + tabix."""
    from pysam.libcbgzf import BGZFile

    ids = info_ids(plan, model_name)
    ours = {key for key, _ in ids}
    meta = [line for line in header[:-1]
            if not (line.startswith("##INFO=<ID=") and line[11:].split(",")[0] in ours)]
    meta += [f'##INFO=<ID={key},Number=1,Type=Float,Description="{desc}">' for key, desc in ids]
    if command:
        meta.append(f"##genoclCommand={command}")
    compressed = not str(out).endswith(".vcf")
    order: dict[str, int] = {}
    state = {"last": ("", 0), "sorted": True, "max_pos": 0}
    new_index = None
    with atomic_path(out, force=force) as tmp:
        handle = BGZFile(str(tmp), "wb") if compressed else open(tmp, "wb")  # noqa: SIM115
        try:
            handle.write(("\n".join(meta + ["\t".join(VCF_COLUMNS)]) + "\n").encode())

            def write(batch: list[Variant], scores: np.ndarray) -> None:
                lines = []
                for v, row in zip(batch, scores.tolist(), strict=True):
                    _track_order(v, order, state)
                    ours_info = ";".join(f"{key}={_fmt(x) if math.isfinite(x) else '.'}"
                                         for (key, _), x in zip(ids, row, strict=True))
                    info = ours_info if v.info == "." else f"{v.info};{ours_info}"
                    lines.append("\t".join([v.chrom, str(v.pos), v.id, v.ref, v.alt, v.qual,
                                            v.filter, info]))
                handle.write(("\n".join(lines) + "\n").encode())

            yield write
        finally:
            handle.close()
        summary["indexed"] = False
        if compressed and state["sorted"]:
            import pysam

            index = Path(f"{out}.tbi")
            csi = state["max_pos"] >= 2**29  # .tbi cannot index past 512 Mb
            pysam.tabix_index(str(tmp), preset="vcf", force=True, csi=csi,
                              index=str(tmp) + (".csi" if csi else ".tbi"))
            new_index = (Path(str(tmp) + (".csi" if csi else ".tbi")), index.with_suffix(".csi") if csi else index)
            summary["indexed"] = True
        elif compressed:
            summary["unsorted"] = True
        # The data and its index are replaced as a pair: the old index goes first, then the data
        # is renamed over the old data, then the new index lands. At no instant does an index sit
        # beside data it does not describe (between the steps there is simply no index).
        for stale in (Path(f"{out}.tbi"), Path(f"{out}.csi")):
            if stale.exists():
                stale.unlink()
        crash_point("score-vcf:index-removed")
    if new_index is not None:
        crash_point("score-vcf:data-replaced")
        os.replace(*new_index)


def _track_order(variant: Variant, order: dict[str, int], state: dict) -> None:
    """Note whether records arrive sorted (tabix needs contiguous contigs, rising POS)."""
    last_chrom, last_pos = state["last"]
    if variant.chrom != last_chrom:
        if variant.chrom in order:
            state["sorted"] = False
        order[variant.chrom] = len(order)
    elif variant.pos < last_pos:
        state["sorted"] = False
    state["last"] = (variant.chrom, variant.pos)
    state["max_pos"] = max(state["max_pos"], variant.pos)


@contextlib.contextmanager
def _h5ad_sink(out: Path, force: bool, plan: ScoringPlan, model_name: str):
    """AnnData written incrementally with h5py (rows appended per batch, never all in memory).

    ``X`` is the first requested score, ``layers[score]`` every score; ``obs`` the variants,
    ``var`` the tracks. The layout is anndata's on-disk format (read with ``anndata.read_h5ad``).
    """
    import anndata
    import h5py

    n_labels = len(plan.labels)
    text = h5py.string_dtype("utf-8")
    with atomic_path(out, force=force) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        matrices = {}
        for name in ("X", *(f"layers/{s}" for s in plan.scores)):
            matrices[name] = h5.create_dataset(name, shape=(0, n_labels), maxshape=(None, n_labels),
                                               dtype="float32", chunks=(1024, n_labels))
            matrices[name].attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        h5["layers"].attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})
        obs = h5.create_group("obs")
        obs_cols = {"_index": text, "chrom": text, "pos": "int64", "id": text, "ref": text,
                    "alt": text}
        for col, dtype in obs_cols.items():
            obs.create_dataset(col, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(4096,))
            kind = "array" if dtype == "int64" else "string-array"
            obs[col].attrs.update({"encoding-type": kind, "encoding-version": "0.2.0"})
        obs.attrs.update({"encoding-type": "dataframe", "encoding-version": "0.2.0",
                          "_index": "_index", "column-order": ["chrom", "pos", "id", "ref", "alt"]})
        n = [0]

        def write(batch: list[Variant], scores: np.ndarray) -> None:
            lo, hi = n[0], n[0] + len(batch)
            for dataset in (*matrices.values(), *(obs[c] for c in obs_cols)):
                dataset.resize(hi, axis=0)
            for i, score in enumerate(plan.scores):
                block = scores[:, i * n_labels : (i + 1) * n_labels].astype(np.float32)
                matrices[f"layers/{score}"][lo:hi] = block
                if i == 0:
                    matrices["X"][lo:hi] = block
            obs["_index"][lo:hi] = [str(i) for i in range(lo, hi)]
            obs["pos"][lo:hi] = [v.pos for v in batch]
            for col in ("chrom", "id", "ref", "alt"):
                obs[col][lo:hi] = [getattr(v, col) for v in batch]
            n[0] = hi

        yield write
        var = pd.DataFrame({"track_index": plan.tracks if not plan.aggregate else [-1]},
                           index=pd.Index(plan.labels, dtype=str))
        uns = {"genocl": {"model": model_name, "scores": list(plan.scores),
                          "window_bins": list(plan.bins), "tracks": list(plan.tracks),
                          "aggregate": bool(plan.aggregate), "X": plan.scores[0]}}
        for key, value in (("var", var), ("uns", uns), ("obsm", {}), ("varm", {}),
                           ("obsp", {}), ("varp", {})):
            anndata.io.write_elem(h5, key, value)


@contextlib.contextmanager
def _skipped_sink(out: Path, force: bool):
    """``<out>.skipped.tsv``: every allele not scored (or scored despite a REF mismatch).

    Written to a temporary file; kept only if something was skipped. A stale report of an
    earlier run is removed when ``force`` replaces the output.
    """
    final = out.with_name(out.name + ".skipped.tsv")
    if final.exists() and not force:
        raise input_error(final, "output", "already exists", "choose another --out or pass --force")
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final)  # a killed run's temporary report (the CLI holds the claim on --out)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    count = [0]
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write("#CHROM\tPOS\tID\tREF\tALT\treason\tdetail\n")

            def write(variant: Variant, reason: str, detail: str) -> None:
                count[0] += 1
                handle.write(f"{variant.chrom}\t{variant.pos}\t{variant.id}\t{variant.ref}\t"
                             f"{variant.alt}\t{reason}\t{detail}\n")

            yield write
        if count[0]:
            os.replace(tmp, final)
        elif final.exists():
            final.unlink()
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ---------------------------------------------------------------------------------------------
# Models named on the command line
# ---------------------------------------------------------------------------------------------


def load_scoring_model(spec: str | os.PathLike):
    """Load ``--model``: a zoo entry (a name under ``model_zoo/`` or a directory with
    ``model.yaml``) or any format :func:`genocl_plugin.models.load_model` reads.

    A zoo entry's checksums are verified with ``genocl_plugin.zoo.verify_entry`` before its
    weights are read; the entry's ``config.json`` + ``model.safetensors`` are a genocl model
    directory, loaded as such.

    Returns
    -------
    tuple
        ``(model, name)``; the name labels the score columns.
    """
    from genocl_plugin import models

    spec = str(spec)
    entry = _zoo_entry(spec, models.BUNDLED_MODELS)
    if entry is None:
        return models.load_model(spec), model_label(spec)
    zoo = _zoo_module()
    if zoo is not None and callable(getattr(zoo, "verify_entry", None)):
        bad = [name for name, ok in zoo.verify_entry(entry).items() if not ok]
        if bad:
            raise input_error(entry, "--model", f"checksum mismatch ({', '.join(bad)})",
                              "re-download or re-publish the zoo entry")
    parts = entry.resolve().parts
    # "model_zoo/enformer-mini/base-v1" -> "enformer-mini-base-v1" ("/" separates TSV columns)
    label = "-".join(parts[parts.index("model_zoo") + 1 :]) if "model_zoo" in parts else entry.name
    for candidate in (entry, *sorted(p for p in entry.iterdir() if p.is_dir())):
        model_dir = models.resolve_model_dir(candidate)
        if model_dir is not None:
            return models.load_model(model_dir), label
    raise input_error(entry, "--model", "zoo entry without config.json + model.safetensors",
                      "publish the entry again, or pass the model directory itself")


def model_label(spec: str | os.PathLike) -> str:
    """Name for column headers: the bundled name, or the run / model directory / file name."""
    path = Path(spec)
    if path.name == "model" and path.parent.name:
        return path.parent.name
    return path.name[: -len(path.suffix)] if path.suffix in (".ckpt", ".pt", ".pth", ".torch") else path.name


def _zoo_entry(spec: str, bundled: dict) -> Path | None:
    """The zoo entry directory ``spec`` names, or None when it is not a zoo entry."""
    path = Path(spec)
    if (path / "model.yaml").is_file():
        return path
    if spec in bundled or path.exists():
        return None
    for root in (Path.cwd() / "model_zoo", Path(__file__).resolve().parents[2] / "model_zoo"):
        if (root / spec / "model.yaml").is_file():
            return root / spec
    return None


def _zoo_module():
    try:
        from genocl_plugin import zoo
    except ImportError:
        return None
    return zoo
