"""Experience replay of reference windows, mixed into every training batch.

A buffer (``reservoir`` or ``balanced`` per region) of windows of the reference set
(:mod:`genocl_plugin.data.reference`: the user's BED + genome, or the bundled hg38 windows) — the
base model's training distribution — is filled once within a memory budget. Every step,
``ratio * batch_size`` buffered windows are drawn and the model's own training loss
(``pl_module.loss``) on them is added to the screen loss. Targets are the real tracks when the
reference set has them at the model's resolution, otherwise the parent model's predictions
(pseudo-replay), computed once and memory-mapped by the reference set.

For gReLU users who prefer data over callbacks, :class:`ReferenceDataModule` serves the
reference set as a ``LightningDataModule`` and :class:`ReplayDataModule` combines a new-task
loader with reference windows through Lightning's ``CombinedLoader``.
"""

from __future__ import annotations

import math

import numpy as np
import pytorch_lightning as pl
import torch

from genocl_plugin.data import reference
from genocl_plugin.objectives import batch_size
from genocl_plugin.strategies.base import LossTermCallback, resolve_reference, rng_state, set_rng_state
from genocl_plugin.training.replay import fill_reference_buffer


class ReplayCallback(LossTermCallback):
    """Replay of reference windows as a pytorch_lightning callback.

    Parameters
    ----------
    ratio
        Replayed windows per screen example in each batch (at least one window per step).
    budget_mb
        Memory budget of the buffer (sequences + targets or cached teacher rows), MB; None:
        2 MB, but at least one window and at most all of them (``replay.fill_buffer``).
    policy
        ``reservoir`` or ``balanced`` (equal share per reference window).
    pseudo
        Force pseudo-replay (True) or real tracks (False); default: real tracks when they fit.
    weight
        Weight of the replay loss.
    seq_len
        Input length (default: the model's).
    reference
        The :class:`~genocl_plugin.data.reference.ReferenceSet` to replay (default: the bundled
        hg38 windows at the model's geometry).
    normalize
        Divide the replay loss by the parent's loss on the buffer (unit-free ``weight``).
    """

    state_name = "replay"

    def __init__(self, ratio: float = 0.25, budget_mb: float | None = None, policy: str = "reservoir",
                 pseudo: bool | None = None, weight: float = 1.0, seq_len: int | None = None,
                 reference=None, seed: int = 0, normalize: bool = True) -> None:
        self.normalize = normalize
        self.ratio, self.budget_mb, self.policy, self.pseudo = ratio, budget_mb, policy, pseudo
        self.weight, self.seq_len, self.reference, self.seed = weight, seq_len, reference, seed
        self.rng = np.random.default_rng(seed)
        self.codes = self.targets = self.buffer = None
        self.keys: list[int] | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.codes is None:
            self.prepare(pl_module)
        # Under DDP every rank fills the same buffer (same seed, same windows); each replays
        # only its own shard, so the ranks together replay distinct windows, not copies.
        world, rank = trainer.world_size, trainer.global_rank
        self.shard = np.arange(rank, len(self.codes), world) if len(self.codes) >= world else np.arange(len(self.codes))

    def prepare(self, pl_module) -> None:
        """Fill the buffer from the reference set; targets are real tracks or the parent's predictions."""
        ref = self.reference = resolve_reference(self.reference, pl_module, self.seq_len, "replay")
        pseudo = (not ref.trainable_tracks) if self.pseudo is None else self.pseudo
        # the buffer holds sequences and targets (real, or the teacher's cached rows)
        self.buffer, keys = fill_reference_buffer(ref, self.budget_mb, self.policy, self.seed, self.keys, pseudo)
        self.codes = ref.codes("train", keys)
        self.targets = ref.targets("train", keys, pl_module, pseudo=pseudo)
        self.pseudo_used = bool(pseudo)
        self.scale = 1.0
        if self.normalize:
            # The parent's own loss on the buffer: replay then reads 1.0 at the parent's level, so
            # its weight means the same whatever the loss's units (ProCapNet's is in the hundreds).
            with torch.no_grad():
                self.scale = 1.0 / max(float(self._replay_loss(pl_module, np.arange(min(32, len(self.codes))))), 1e-8)

    def _replay_loss(self, pl_module, idx: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(reference.codes_to_one_hot(self.codes[idx])).to(pl_module.device)
        y = torch.from_numpy(self.targets[idx]).to(pl_module.device)
        # outputs beyond the reference tracks (a new screen head) are not replayed
        return pl_module.loss(pl_module(x, logits=True)[:, : y.shape[1]], y)

    def loss_term(self, pl_module, batch) -> torch.Tensor | None:
        shard = getattr(self, "shard", None)
        shard = np.arange(len(self.codes)) if shard is None else shard
        n = min(len(shard), max(1, math.ceil(self.ratio * batch_size(batch))))
        idx = np.sort(self.rng.choice(shard, n, replace=False))
        return self.weight * self.scale * self._replay_loss(pl_module, idx)

    def state_dict(self) -> dict:
        """Where the replay draws are (a resumed run draws the windows the killed one would have)."""
        return {"rng": rng_state(self.rng)}

    def load_state_dict(self, state_dict: dict) -> None:
        set_rng_state(self.rng, state_dict["rng"])

    def state_dict_for_run(self) -> dict[str, torch.Tensor]:
        """The buffered crops' indices and the number of crops the buffer has seen."""
        return {"keys": torch.tensor(self.buffer.keys, dtype=torch.int64),
                "n_seen": torch.tensor([self.buffer.n_seen], dtype=torch.int64)}

    def load_state_from_run(self, state: dict[str, torch.Tensor]) -> None:
        if "keys" in state:
            self.keys = [int(k) for k in state["keys"]]


    def summary(self) -> dict:
        """What was replayed (recorded in metrics.json)."""
        return {"reference": self.reference.name if self.reference is not None else None,
                "windows": 0 if self.codes is None else int(len(self.codes)),
                "targets": "pseudo (parent model)" if getattr(self, "pseudo_used", False) else "real tracks"}


def replay_callbacks(replay_ratio: float | None = None, replay_budget_mb: float | None = None,
                     replay_policy: str | None = None, seed: int = 0, reference=None, **_params) -> list:
    """The CLI's ``replay`` strategy."""
    return [ReplayCallback(ratio=0.25 if replay_ratio is None else replay_ratio,
                           budget_mb=replay_budget_mb,
                           policy=replay_policy or "reservoir", seed=seed, reference=reference)]


class ReferenceDataset(torch.utils.data.Dataset):
    """``(x, y)`` pairs of one split of a reference set (y: real tracks or the parent's predictions).

    Targets are materialised once at construction (pseudo-targets need ``model`` then).
    """

    def __init__(self, reference_set, split: str = "train", model=None, pseudo: bool | None = None,
                 max_windows: int | None = None, seed: int = 0) -> None:
        self.reference, self.split = reference_set, split
        self.idx = reference_set.subset(split, max_windows, seed)
        self.targets = reference_set.targets(split, self.idx, model, pseudo=pseudo)

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i: int):
        x = self.reference.one_hot(self.split, self.idx[i : i + 1])[0]
        return x, torch.from_numpy(self.targets[i])


class ReferenceDataModule(pl.LightningDataModule):
    """A reference set as a ``LightningDataModule``: train / val / test loaders of ``(x, y)``.

    Parameters
    ----------
    reference_set
        A :class:`~genocl_plugin.data.reference.ReferenceSet`.
    model
        The parent model (pseudo-targets are its predictions, computed once).
    batch_size, max_windows, seed
        Loader batch size; optional seeded subset per split.
    """

    def __init__(self, reference_set, model=None, batch_size: int = 8, max_windows: int | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        self.reference, self.model, self.batch_size = reference_set, model, batch_size
        self.max_windows, self.seed = max_windows, seed

    def _loader(self, split: str, shuffle: bool = False):
        data = ReferenceDataset(self.reference, split, self.model, max_windows=self.max_windows, seed=self.seed)
        return torch.utils.data.DataLoader(data, batch_size=self.batch_size, shuffle=shuffle)

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("valid")

    def test_dataloader(self):
        return self._loader("test")


class ReplayDataModule(pl.LightningDataModule):
    """New-task batches combined with replayed reference windows (Lightning's ``CombinedLoader``).

    Each training batch holds ``batch_size`` new examples and ``ceil(ratio * batch_size)``
    reference windows. When both carry targets of the same shape (the same tracks: classic
    experience replay for a gReLU model fine-tuned on new data of its own outputs) the two are
    concatenated into one ``(x, y)`` batch, so gReLU's unmodified ``LightningModel`` trains on
    them; otherwise the batch stays ``{"new": ..., "replay": ...}``.

    Parameters
    ----------
    new_data
        A ``Dataset`` of ``(x, y)`` pairs (the new task).
    reference_set
        The :class:`~genocl_plugin.data.reference.ReferenceSet` to replay.
    model
        The parent model (pseudo-targets).
    batch_size, ratio, budget_mb, policy, seed
        New examples per batch, replayed windows per new example, buffer budget and policy.
    """

    def __init__(self, new_data, reference_set, model=None, batch_size: int = 8, ratio: float = 0.5,
                 budget_mb: float | None = None, policy: str = "reservoir", seed: int = 0) -> None:
        super().__init__()
        self.new_data, self.reference, self.model = new_data, reference_set, model
        self.batch_size, self.ratio, self.budget_mb, self.policy, self.seed = batch_size, ratio, budget_mb, policy, seed

    def setup(self, stage: str | None = None) -> None:
        ref = self.reference
        pseudo = not ref.trainable_tracks
        _, keys = fill_reference_buffer(ref, self.budget_mb, self.policy, self.seed, pseudo=pseudo)
        self.replay_data = torch.utils.data.TensorDataset(
            ref.one_hot("train", keys), torch.from_numpy(ref.targets("train", keys, self.model)))

    def train_dataloader(self):
        from pytorch_lightning.utilities import CombinedLoader

        n_replay = max(1, math.ceil(self.ratio * self.batch_size))
        new = torch.utils.data.DataLoader(self.new_data, batch_size=self.batch_size, shuffle=True)
        # the new data define the epoch; the replay buffer is cycled (reshuffled) to match it
        sampler = torch.utils.data.RandomSampler(self.replay_data, num_samples=len(new) * n_replay,
                                                 generator=torch.Generator().manual_seed(self.seed))
        replay = torch.utils.data.DataLoader(self.replay_data, batch_size=n_replay, sampler=sampler)
        return CombinedLoader({"new": new, "replay": replay}, mode="min_size")

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if isinstance(batch, dict) and set(batch) == {"new", "replay"}:
            (x_new, y_new), (x_old, y_old) = batch["new"], batch["replay"]
            if y_new.shape[1:] == y_old.shape[1:] and x_new.shape[1:] == x_old.shape[1:]:
                return torch.cat([x_new, x_old]), torch.cat([y_new, y_old])
        return batch
