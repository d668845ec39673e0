"""Run the model: ``--devices``, eval mode on the device(s), and the window sums of a batch.

:func:`predict_window_sums` sums the predicted coverage of the planned tracks over the planned
output window (both strands averaged with ``rc``); :func:`compare` turns the REF and ALT sums
into the score columns of a :class:`~genocl_plugin.scoring.plan.ScoringPlan`. torch is
imported inside the functions, so reading this module costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from genocl_plugin.errors import input_error
from genocl_plugin.scoring.plan import ScoringPlan


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


def predict_track_outputs(forward: Callable, codes: np.ndarray, plan: ScoringPlan, rc: bool = False,
                          device=None, batch_size: int = 64) -> np.ndarray:
    """Predicted coverage of the planned tracks at every output position (``--share-windows``:
    each variant of a shared window reads its own bins).

    Returns
    -------
    np.ndarray
        (n, len(plan.tracks), plan.n_out) float64; with ``rc`` averaged with the
        reverse-complement prediction flipped back onto forward positions and strand partners.
    """
    import torch

    tracks = torch.as_tensor(plan.tracks)
    partners = torch.as_tensor(plan.partners)
    out = np.empty((len(codes), len(plan.tracks), plan.n_out), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(codes), batch_size):
            x = _one_hot(torch.from_numpy(codes[start : start + batch_size]).to(device))
            pred = forward(x)[:, tracks].double()
            if rc:
                pred = (pred + forward(x.flip(1, 2))[:, partners].double().flip(-1)) / 2
            out[start : start + len(x)] = pred.cpu().numpy()
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
