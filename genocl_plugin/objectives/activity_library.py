"""Activity libraries (``assay="activity"``): one sequence per row, its predicted activity and the
scale-free loss.

One sequence per row (lentiMPRA elements, STARR-seq fragments, promoter libraries) and its
measured activity. The predicted activity is the MPRA readout of the sequence alone: it is
centred in the model input and padded with N (as mpra_dataset centres an element), and its log2
activity is the log of the predicted signal summed over the readout tracks and the output
positions the sequence covers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from genocl_plugin.data import reference
from genocl_plugin.errors import input_error
from genocl_plugin.objectives.input_length import check_input_length
from genocl_plugin.objectives.readout import LN2, _output_window, activity, readout_mask, readout_tracks


class ActivityDataset(Dataset):
    """Sequences of an activity library with their readout window and measured activity.

    Each sequence is stored once, unpadded, and padded with N to ``seq_len`` per item (an
    Enformer-length input per row would not fit in memory for a real library). ``effect`` is
    the measured activity (the name the shared update/evaluate code reads), ``groups`` the
    hold-out unit of each row. Build it with :func:`activity_dataset`.
    """

    kind = "activity"

    def __init__(self, codes: list[np.ndarray], seq_len: int, lo: np.ndarray, hi: np.ndarray,
                 activity: np.ndarray, track_mask: np.ndarray, names: list[str], groups: list[str]) -> None:
        self.codes, self.seq_len = codes, int(seq_len)
        self.offsets = np.array([(self.seq_len - len(c)) // 2 for c in codes], dtype=np.int64)
        self.lo, self.hi = np.asarray(lo), np.asarray(hi)
        self.effect = np.asarray(activity, dtype=np.float32)
        self.track_mask = torch.as_tensor(track_mask, dtype=torch.bool)
        self.names, self.groups = names, groups

    def __len__(self) -> int:
        return len(self.codes)

    def padded(self, i: int) -> np.ndarray:
        """Row ``i``'s sequence centred in ``seq_len`` bp of N (codes)."""
        out = np.full(self.seq_len, 4, dtype=np.uint8)
        out[self.offsets[i] : self.offsets[i] + len(self.codes[i])] = self.codes[i]
        return out

    def __getitem__(self, i: int) -> dict:
        return {"seq": self.padded(i), "lo": int(self.lo[i]), "hi": int(self.hi[i]),
                "effect": float(self.effect[i]), "track_mask": self.track_mask}


def collate_activity(items: list[dict]) -> dict:
    """Collate activity rows; ``kind="activity"`` routes the batch to :func:`activity_loss`."""
    return {
        "kind": "activity",
        "seqs": torch.from_numpy(reference.codes_to_one_hot(np.stack([it["seq"] for it in items]))),
        "lo": torch.tensor([it["lo"] for it in items]),
        "hi": torch.tensor([it["hi"] for it in items]),
        "effect": torch.tensor([it["effect"] for it in items], dtype=torch.float32),
        "track_mask": items[0]["track_mask"],
    }


def activity_dataset(screen, model, path: str = "<screen>", readout: str | None = None,
                     seq_len: int | None = None) -> ActivityDataset:
    """Build the rows of an activity screen for a model.

    Parameters
    ----------
    screen
        A validated ``assay="activity"`` screen.
    model
        The model to train.
    path
        The screen file, named in errors.
    readout
        ``--readout-tracks``; the default is the MPRA readout (:func:`readout_tracks` with
        ``"mpra"``: Enformer CAGE + DNase, ProCapNet both strands).
    seq_len
        ``--mpra-input-length``: the input each sequence is centred in (default ``model.seq_len``).
    """
    obs = screen.obs
    seqs = obs["sequence"].astype(str).tolist()
    longest = max((len(x) for x in seqs), default=0)
    if seq_len is None:
        seq_len = int(model.seq_len)
    else:
        check_input_length(model, int(seq_len), longest, path, what="obs['sequence']")
    if longest > seq_len:
        i = int(np.argmax([len(x) for x in seqs]))
        raise input_error(path, "obs['sequence']", f"row {obs.index[i]}: a {longest}-bp sequence is longer than the "
                          f"model input ({seq_len} bp)", "use a model (or --mpra-input-length) with a longer input, "
                          "or shorter sequences (`genocl screen from-activity --trim-adapters`)")
    codes, lo, hi, windows = [], [], [], {}
    for seq in seqs:
        codes.append(reference.seq_to_codes(seq.upper()))
        if len(seq) not in windows:
            offset = (seq_len - len(seq)) // 2
            windows[len(seq)] = _output_window(model, seq_len, offset, offset + len(seq))
        lo.append(windows[len(seq)][0])
        hi.append(windows[len(seq)][1])
    mask = np.zeros(len(model.task_names), dtype=bool)
    mask[readout_tracks(model, "mpra", readout, screen.uns.get("cell_type"))] = True
    groups = obs["group"].astype(str).tolist() if "group" in obs.columns else list(obs.index)
    return ActivityDataset(codes, seq_len, np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64),
                           obs["activity"].to_numpy(float), mask, list(obs.index), groups)


def predicted_activity(model, batch: dict, logits_fn=None) -> torch.Tensor:
    """Predicted log2 activity of each sequence of an activity batch.

    Returns
    -------
    torch.Tensor
        (batch,) log2 of the predicted signal summed over the readout tracks (a multi-head
        model's screen head when it has one, as in :func:`predicted_effects`) and the output
        positions the sequence covers.
    """
    forward = logits_fn or (lambda x: model(x, logits=True))
    out = forward(batch["seqs"])
    mask = readout_mask(model, batch["track_mask"], out)
    return activity(out, mask, batch["lo"], batch["hi"]) / LN2


ACTIVITY_EPS = 1e-8


def activity_loss(predicted: torch.Tensor, measured: torch.Tensor, eps: float = ACTIVITY_EPS) -> torch.Tensor:
    """Scale-free loss of an activity batch: ``1 - Pearson(predicted, measured)`` over the batch.

    Computed as half the mean squared difference of the two standardised vectors, which is
    ``1 - r`` (population standard deviations). The predicted log activity is on the model's own
    scale (another offset and spread than the measured log2 RNA/DNA), so only its agreement up
    to an increasing affine map is trained.

    Why Pearson and not the MSE after a per-batch least-squares calibration ``a * pred + b``
    (slope and intercept detached): with a standardised target that MSE equals ``1 - r**2``,
    blind to the sign of the correlation. A model that ranks the batch backwards gets a
    negative fitted slope, and with the slope detached the gradient then pushes the
    predictions further backwards. ``1 - r`` is lowest at ``r = 1`` only, is what the update
    reports (held-out Pearson), and the standardisation makes its value independent of the
    predictions' scale.

    ``eps`` is added to both variances, so identical predictions (or identical measurements,
    or a batch of one) give ``0.5 * mean(z**2)`` of the other side -- finite, with finite
    gradients -- instead of 0/0.

    Dropout stays on for these batches (:func:`is_comparison`): the rows are different
    sequences, not two near-identical sequences whose small difference dropout noise would
    swamp. On the bundled enformer-mini (dropout 0.4), 32 WTC11 lentiMPRA elements in train
    mode differ between two passes by sd 0.047 log2, against a spread of sd 0.73 between the
    elements (eval mode); an MPRA variant's effect has sd 0.028 against noise 0.114
    (:func:`disable_dropout`). So dropout regularises here as it does on track crops.
    """
    predicted = predicted.float()
    measured = measured.to(predicted)
    zp = (predicted - predicted.mean()) / torch.sqrt(predicted.var(unbiased=False) + eps)
    zm = (measured - measured.mean()) / torch.sqrt(measured.var(unbiased=False) + eps)
    return 0.5 * torch.mean((zp - zm) ** 2)
