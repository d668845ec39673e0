"""Content hashes of screen datasets: equal fingerprints mean equal predictions from equal weights."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from genocl_plugin.objectives.activity_library import ActivityDataset
from genocl_plugin.objectives.perturbation import PerturbationDataset


def dataset_fingerprint(dataset) -> str | None:
    """Content hash of a perturbation dataset (or a Subset of one); None for other kinds.

    Covers the sequences, readout windows and readout tracks -- everything a model's predicted
    effects depend on -- so two datasets with the same fingerprint get the same predictions
    from the same weights (``run_update(parent_predictions=...)`` shares them that way).
    """
    indices = None
    if isinstance(dataset, torch.utils.data.Subset):
        dataset, indices = dataset.dataset, np.asarray(dataset.indices)
    if isinstance(dataset, ActivityDataset):
        arrays = (*dataset.codes, dataset.offsets, np.array([dataset.seq_len]), dataset.lo, dataset.hi)
    elif isinstance(dataset, PerturbationDataset):
        arrays = (*dataset.refs, *dataset.alts, dataset.ref_index, dataset.lo, dataset.hi)
    else:
        return None
    digest = hashlib.sha1()
    for array in (*arrays, dataset.track_mask.numpy(), indices if indices is not None else np.zeros(0)):
        digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(b"|")
    return digest.hexdigest()
