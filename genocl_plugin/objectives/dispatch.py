"""One entry point over every screen kind: the dataset of a screen (on its ``uns["assay"]``), the
collate function of a dataset, and the prediction, loss and size of a batch (on its ``kind``).
"""

from __future__ import annotations

import numpy as np
import torch

from genocl_plugin.objectives.activity_library import (
    ActivityDataset,
    activity_dataset,
    activity_loss,
    collate_activity,
    predicted_activity,
)
from genocl_plugin.objectives.input_length import check_mpra_assay
from genocl_plugin.objectives.personal import (
    PersonalDataset,
    collate_personal,
    pairwise_loss,
    personal_dataset,
    predicted_expression,
)
from genocl_plugin.objectives.perturbation import (
    PerturbationDataset,
    collate_perturbations,
    crispri_dataset,
    effect_loss,
    mpra_dataset,
    predicted_effects,
)


def screen_dataset(screen, model, silencing: str = "shuffle", seed: int = 0,
                   path: str = "<screen>", readout: str | None = None, pairwise_alpha: float = 0.5,
                   max_items: int | None = None, mpra_seq_len: int | None = None):
    """The perturbation dataset of any supported screen (a PersonalDataset for personal genomes,
    a :class:`~genocl_plugin.data.tracks.TracksDataset` for coverage tracks).

    ``readout`` is ``--readout-tracks`` (see :func:`readout_tracks`); ``max_items`` subsamples
    the crops of a tracks screen (other screens are subsampled by row in ``prepare_screen``);
    ``mpra_seq_len`` is ``--mpra-input-length`` (MPRA and activity libraries only: the other
    assays need the genome around the element).
    """
    if mpra_seq_len is not None:
        check_mpra_assay(screen.uns["assay"], path)
    if screen.uns["assay"] == "activity":
        return activity_dataset(screen, model, path=path, readout=readout, seq_len=mpra_seq_len)
    if screen.uns["assay"] == "tracks":
        from genocl_plugin.data.tracks import tracks_dataset

        return tracks_dataset(screen, model, path=path, max_crops=max_items, seed=seed)
    if screen.uns["assay"] == "personal":
        return personal_dataset(screen, model, alpha=pairwise_alpha, path=path, readout=readout)
    if screen.uns["assay"] == "mpra":
        return mpra_dataset(screen, model, path=path, readout=readout, seq_len=mpra_seq_len)
    return crispri_dataset(screen, model, silencing=silencing, seed=seed, readout=readout, path=path)


def collate_for(dataset):
    """The collate function matching a dataset (or a Subset of one)."""
    base = getattr(dataset, "dataset", dataset)
    if isinstance(base, ActivityDataset):
        return collate_activity
    if getattr(base, "kind", None) == "tracks":
        from genocl_plugin.data.tracks import collate_for_tracks

        return collate_for_tracks(base)
    return collate_personal if isinstance(base, PersonalDataset) else collate_perturbations


def predict_batch(model, batch: dict, logits_fn=None) -> torch.Tensor:
    """Predicted log2 effect (perturbation batches), log2 expression (personal batches) or log2
    activity (activity batches); ``logits_fn`` replaces ``model(x, logits=True)``."""
    if batch.get("kind") == "personal":
        return predicted_expression(model, batch, logits_fn)
    if batch.get("kind") == "activity":
        return predicted_activity(model, batch, logits_fn)
    return predicted_effects(model, batch, logits_fn)


def batch_size(batch) -> int:
    """Examples in a training batch: perturbation / personal rows (``effect``), track crops
    (``target``) or a gReLU ``(x, y)`` tuple."""
    if isinstance(batch, dict):
        return int(batch["effect" if "effect" in batch else "target"].shape[0])
    return int(batch[0].shape[0])


def batch_loss(model, batch: dict) -> torch.Tensor:
    """The training loss of a dict batch: pairwise/MSE for personal rows, the scale-free
    :func:`activity_loss` for activity libraries, effect MSE otherwise."""
    if batch.get("kind") == "activity":
        return activity_loss(predicted_activity(model, batch), batch["effect"])
    if batch.get("kind") == "personal":
        return pairwise_loss(predicted_expression(model, batch), batch["effect"], batch["gene"], batch["alpha"])
    if batch.get("kind") == "tracks":
        from genocl_plugin.data.tracks import tracks_loss

        return tracks_loss(model, batch)
    return effect_loss(predicted_effects(model, batch), batch["effect"])


@torch.no_grad()
def predict_screen_effects(model, dataset: PerturbationDataset, batch_size: int = 16) -> np.ndarray:
    """Predicted log2 effects for every row of a perturbation dataset (personal: log2 expression;
    activity library: log2 activity)."""
    if len(dataset) == 0:
        return np.zeros(0)
    model.eval()
    from genocl_plugin.progress import Progress

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate_for(dataset))
    # A row of a full-size model is two long forward passes: a batch is minutes on a CPU (a full
    # Enformer showed "0/2 rows" for 13 minutes). Inputs of 65,536 bp and more run one sequence
    # at a time, and the progress advances per sequence, as a fraction of the batch's rows;
    # shorter inputs keep one forward per batch (the same numbers as before).
    chunk = 1 if int(getattr(model, "seq_len", 0) or 0) >= 65_536 else None
    out = []
    with Progress(len(dataset), "predicting effects", "row") as bar:
        done = 0
        for batch in loader:
            rows = int(batch["effect"].shape[0])

            def forward(x, start=done, rows=rows):
                step = chunk or len(x)
                parts = []
                for i in range(0, len(x), step):
                    parts.append(model(x[i : i + step], logits=True))
                    bar.update(round(start + rows * min(i + step, len(x)) / len(x), 2))
                return torch.cat(parts)

            out.append(predict_batch(model, _to_device(batch, model.device), logits_fn=forward).cpu().numpy())
            done += rows
            bar.update(done)
    return np.concatenate(out)


def _to_device(batch: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
