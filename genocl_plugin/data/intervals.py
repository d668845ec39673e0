"""Genomic intervals ``chr:start-end``: the parser every assay uses.

:func:`parse_interval` reads the 0-based half-open intervals of screens (CRISPRi ``elements``,
track windows); :func:`parse_interval_1based` the 1-based inclusive ones of the Kircher et al.
2019 FASTA headers.
"""

from __future__ import annotations

import re

_INTERVAL = re.compile(r"^(?P<chrom>[^:\s]+):(?P<start>\d+)-(?P<end>\d+)$")


def parse_interval(text: str) -> tuple[str, int, int]:
    """Parse ``chr:start-end`` (0-based, half-open) into ``(chrom, start, end)``."""
    match = _INTERVAL.match(text.strip())
    if match is None:
        raise ValueError(f"not an interval chr:start-end: {text!r}")
    start, end = int(match["start"]), int(match["end"])
    if end <= start:
        raise ValueError(f"empty interval: {text!r}")
    return match["chrom"], start, end


def parse_interval_1based(text: str) -> tuple[str, int, int] | None:
    """Parse ``chr:start-end`` with 1-based inclusive coordinates; None if malformed."""
    match = _INTERVAL.match(text.strip())
    if match is None:
        return None
    return match["chrom"], int(match["start"]), int(match["end"])
