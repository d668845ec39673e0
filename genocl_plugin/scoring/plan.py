"""What to score for every variant: the tracks, the output window and the score columns.

Scores, per selected track (or summed over the selection with ``aggregate=True``), from the
predicted coverage summed over the output positions of a window centred on the variant:
``diff = alt - ref`` and ``log2fc = log2(alt / ref)``. With ``rc=True`` the predictions of both
strands are averaged before comparing (the reverse-strand output is flipped back and stranded
track pairs such as ``[...+]`` / ``[...-]`` are swapped, see :func:`strand_pairs`).
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from genocl_plugin.errors import input_error

SCORES = ("diff", "log2fc")


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


def window_bins(model, seq_len: int, window: int | None = None, position: int | None = None) -> tuple[int, int]:
    """Output positions ``[lo, hi)`` covering ``window`` bp centred on the variant.

    None (or a window wider than the output) is every output position. The window is centred
    on the first REF base (input index ``position``, default ``seq_len // 2 - 1``: the centred
    window) and always keeps at least the output position containing it.
    """
    n_out = model.output_length(seq_len)
    if window is None:
        return 0, n_out
    return bins_at(n_out, int(model.bin_size), (seq_len - n_out * model.bin_size) // 2, window,
                   seq_len // 2 - 1 if position is None else position)


def bins_at(n_out: int, bin_size: int, offset: int, window: int, position: int) -> tuple[int, int]:
    """:func:`window_bins` from the output geometry: ``offset`` input bp precede the first output
    position, the first REF base is at input index ``position``."""
    centre = position + 0.5 - offset  # bp from the first output position
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
    window: int | None = None  # --window (bp)
    bin_size: int = 1
    offset: int = 0  # input bp before the first output position (the model's cropped flank)
    # --share-windows: variants at least this many bp from both input edges share a REF pass
    share_margin: int | None = None


def scoring_plan(model, tracks: Iterable[str | int] | None = None, window: int | None = None,
                 aggregate: bool = False, scores: Iterable[str] = SCORES,
                 share_windows: bool = False) -> ScoringPlan:
    """Resolve tracks, window and scores against a model (input errors for bad requests).

    With ``share_windows`` the plan carries the margin a variant keeps from both input edges
    when it is scored in a window shared with its neighbours: the model's cropped flank plus
    half of ``--window``, so the bins read around it are inside the output.
    """
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
    n_out = model.output_length(seq_len)
    offset = (seq_len - n_out * int(model.bin_size)) // 2
    margin = None
    if share_windows:
        check_share_windows(share_windows, window)
        margin = offset + (window + 1) // 2
        if seq_len - 2 * margin < 1:
            raise input_error(window, "--window", f"leaves no room to share a {seq_len:,}-bp input "
                              f"(its output covers {n_out * int(model.bin_size):,} bp)",
                              "use a smaller --window, or leave out --share-windows")
    return ScoringPlan(seq_len, selected, [int(partners[i]) for i in selected],
                       window_bins(model, seq_len, window), n_out,
                       aggregate, scores, labels, window, int(model.bin_size), offset, margin)


def check_share_windows(share_windows: bool, window: int | None) -> None:
    """``--share-windows`` reads ``--window`` bp around each variant, so it needs one (checked by the
    CLI before the model loads, and by :func:`scoring_plan` for the Python API)."""
    if share_windows and window is None:
        raise input_error("--share-windows", "--window", "a shared window needs the bp read around each variant",
                          "add --window (e.g. --window 1024), or leave out --share-windows")


def column_names(plan: ScoringPlan, model_name: str) -> list[str]:
    """kipoi-veff2 score columns: ``<model>/<track>/<score>``, score-major."""
    return [f"{model_name}/{label}/{score}" for score in plan.scores for label in plan.labels]
