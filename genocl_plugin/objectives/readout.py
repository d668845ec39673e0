"""Where a prediction is read: the readout tracks, the output window over an input span, and the
log activity summed over both.

The model's ``forward(x, logits=True)`` is log coverage, so an activity is a ``logsumexp``.
Every screen kind (perturbation pairs, personal genomes, activity libraries) reads its
prediction through these.
"""

from __future__ import annotations

import math

import torch

from genocl_plugin.data import reference

LN2 = math.log(2.0)


def readout_tracks(model, assay: str, spec: str | None = None, cell_type: str | None = None) -> list[int]:
    """Indices of the tracks whose signal is the assay's readout.

    Parameters
    ----------
    model
        The model (its ``task_names``).
    assay
        ``mpra`` or ``crispri``.
    spec
        ``--readout-tracks``: indices, exact names, globs or ``re:`` regexes over the track names
        (:func:`genocl_plugin.data.reference.match_tracks`); overrides the default.
    cell_type
        The screen's ``uns["cell_type"]``: the default prefers that cell type's tracks.

    Default: Enformer-style models with named tracks read CAGE (+ DNase for MPRA, which measures
    enhancer activity in a reporter) -- only the screen's cell type's when it has such tracks;
    otherwise every track (ProCapNet: both strands = total counts).
    """
    names = [str(n) for n in model.task_names]
    if spec:
        return reference.match_tracks(names, spec)
    groups = ("CAGE", "DNASE") if assay == "mpra" else ("CAGE",)
    idx = [i for i, n in enumerate(names) if reference.assay_group(n) in groups and not n.startswith("screen:")]
    if cell_type and idx:
        wanted = str(cell_type).lower()
        own = [i for i in idx if wanted in names[i].lower()]
        idx = own or idx
    return idx or list(range(len(names)))


def activity(log_coverage: torch.Tensor, track_mask: torch.Tensor, lo: torch.Tensor,
             hi: torch.Tensor) -> torch.Tensor:
    """Natural-log activity: ``log(sum of predicted coverage over tracks and [lo, hi)``).

    Parameters
    ----------
    log_coverage
        (batch, tracks, positions) log predicted coverage.
    track_mask
        (tracks,) bool, the readout tracks.
    lo, hi
        (batch,) output positions delimiting the readout window of each example.

    Returns
    -------
    torch.Tensor
        (batch,) log activity.
    """
    positions = torch.arange(log_coverage.shape[-1], device=log_coverage.device)
    inside = (positions[None, :] >= lo[:, None]) & (positions[None, :] < hi[:, None])
    mask = track_mask.to(log_coverage.device)[None, :, None] & inside[:, None, :]
    masked = log_coverage.masked_fill(~mask, float("-inf"))
    return torch.logsumexp(masked.flatten(1), dim=-1)


def readout_mask(model, track_mask: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The tracks a screen batch reads: the dataset's ``track_mask``, or a multi-head model's
    screen head (strategies.multihead), whatever tracks the dataset was built for.

    ``out`` is the batch's (batch, tracks, positions) model output (its track count and device).
    """
    screen = getattr(model, "screen_tracks", None)
    if not screen:
        return track_mask
    mask = torch.zeros(out.shape[1], dtype=torch.bool, device=out.device)
    mask[screen] = True
    return mask


def _output_window(model, seq_len: int, start: int, end: int) -> tuple[int, int]:
    """Output positions overlapping input bp ``[start, end)`` for an input of ``seq_len``."""
    n_out = model.output_length(seq_len)
    offset = (seq_len - n_out * model.bin_size) // 2
    lo = max(0, (start - offset) // model.bin_size)
    hi = min(n_out, -(-(end - offset) // model.bin_size))
    return lo, max(hi, lo + 1)
