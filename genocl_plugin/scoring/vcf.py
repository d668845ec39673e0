"""Read VCF / BCF files: the header, and one :class:`Variant` per ALT allele.

- :func:`read_header` / :func:`read_variants`: stream a VCF / BCF, one :class:`Variant` per
  ALT allele (multi-allelic records are split), optionally one ``--region`` or one
  ``--shard i/n`` of it. Never loads the whole file.
- :func:`parse_region` / :func:`parse_shard`: the ``--region`` and ``--shard`` options.

Plain, gzip and bgzip VCF text is parsed here; BCF is read with cyvcf2, and an indexed file's
region through tabix (pysam).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from genocl_plugin.errors import GenoclInputError, input_error

VCF_COLUMNS = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
# The 28-byte empty block that ends every complete BGZF file (SAM/BAM spec, section 4.1.2).
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


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
