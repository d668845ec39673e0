"""Replay storage: buffer policies over reference-genome windows and a memory-mapped teacher cache.

The replay data are crops of the bundled real hg38 windows (the base model's training
distribution). A buffer decides *which* crops are kept within a memory budget
(:class:`ReservoirBuffer`: uniform over the stream; :class:`BalancedBuffer`: equal counts per
group, e.g. per window/region or per task); :class:`TeacherCache` holds the parent model's
predictions on them, computed once and memory-mapped.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from genocl_plugin import reference
from genocl_plugin.errors import input_error


def capacity_for_budget(budget_mb: float, item_nbytes: int) -> int:
    """How many items of ``item_nbytes`` bytes fit in ``budget_mb`` MB (2**20 bytes)."""
    return int(budget_mb * 2**20) // max(int(item_nbytes), 1)


class ReservoirBuffer:
    """Reservoir sampling (Vitter's algorithm R): every item seen has the same chance to be kept.

    Parameters
    ----------
    capacity
        Maximum number of items (use :func:`capacity_for_budget` for a memory budget).
    seed
        Seed of the sampling.
    """

    def __init__(self, capacity: int, seed: int = 0) -> None:
        self.capacity, self.rng = int(capacity), np.random.default_rng(seed)
        self.keys: list[int] = []
        self.items: list[tuple[np.ndarray, ...]] = []
        self.n_seen = 0

    def add(self, key: int, item: tuple[np.ndarray, ...], group: object = None) -> None:
        """Offer one item (``key`` identifies it, e.g. its crop index; ``group`` is ignored)."""
        self.n_seen += 1
        if len(self.items) < self.capacity:
            self.keys.append(int(key))
            self.items.append(item)
            return
        j = int(self.rng.integers(0, self.n_seen))
        if j < self.capacity:
            self.keys[j], self.items[j] = int(key), item

    def resize(self, capacity: int) -> None:
        """Shrink to ``capacity`` items; a random subset of a reservoir is still uniform."""
        if len(self.items) > capacity:
            keep = np.sort(self.rng.choice(len(self.items), capacity, replace=False))
            self.keys = [self.keys[i] for i in keep]
            self.items = [self.items[i] for i in keep]
        self.capacity = int(capacity)

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored arrays."""
        return sum(a.nbytes for item in self.items for a in item)

    def __len__(self) -> int:
        return len(self.items)


class BalancedBuffer:
    """Equal share of the capacity per group (window/region or task), a reservoir within each.

    When a new group appears the existing groups shrink to ``capacity // n_groups`` (as
    Avalanche's ``ExperienceBalancedBuffer`` does), so no group crowds out the others.
    """

    def __init__(self, capacity: int, seed: int = 0) -> None:
        self.capacity, self.seed = int(capacity), seed
        self.groups: dict[object, ReservoirBuffer] = {}

    def add(self, key: int, item: tuple[np.ndarray, ...], group: object = None) -> None:
        """Offer one item of ``group``."""
        if group not in self.groups:
            self.groups[group] = ReservoirBuffer(0, seed=self.seed + len(self.groups))
            share = self.capacity // len(self.groups)
            for buffer in self.groups.values():
                buffer.resize(share)
        self.groups[group].add(key, item)

    @property
    def keys(self) -> list[int]:
        return [k for b in self.groups.values() for k in b.keys]

    @property
    def items(self) -> list[tuple[np.ndarray, ...]]:
        return [it for b in self.groups.values() for it in b.items]

    @property
    def n_seen(self) -> int:
        return sum(b.n_seen for b in self.groups.values())

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.groups.values())

    def __len__(self) -> int:
        return sum(len(b) for b in self.groups.values())


def clean_stale_teacher_caches(root: str | Path | None = None) -> list[Path]:
    """Remove ``genocl-teacher-<pid>-*`` cache directories whose process no longer runs.

    A killed run cannot delete its own cache (``TemporaryDirectory`` cleans up only on a normal
    exit), so the next run that builds a cache does it.

    Returns
    -------
    list of Path
        The directories removed.
    """
    import re
    import shutil

    removed = []
    root = Path(root or tempfile.gettempdir())
    for path in root.glob("genocl-teacher-*"):
        match = re.match(r"^genocl-teacher-(\d+)-", path.name)
        if match is None or not path.is_dir():
            continue
        try:
            os.kill(int(match[1]), 0)
            continue  # that process still runs
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # alive, another user's
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


class TeacherCache:
    """The teacher's log predictions on fixed sequences, computed once into an ``np.memmap``.

    Parameters
    ----------
    model
        The teacher (its ``forward(x, logits=True)`` is called in chunks, without gradients).
    codes
        (n, seq_len) uint8 sequences.
    cache_dir
        Where the memory-mapped file goes (default: a temporary directory removed with the cache).
    batch_size
        Chunk size of the teacher's forward passes.
    """

    def __init__(self, model, codes: np.ndarray, cache_dir: str | Path | None = None, batch_size: int = 16) -> None:
        if not cache_dir:
            clean_stale_teacher_caches()
        # The pid in the name lets a later run tell the cache of a killed run from a live one.
        self._tmp = None if cache_dir else tempfile.TemporaryDirectory(prefix=f"genocl-teacher-{os.getpid()}-")
        self.path = Path(cache_dir or self._tmp.name) / "teacher_logits.f32"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        was_training = model.training
        model.eval()
        out = None
        with torch.no_grad():
            for start in range(0, len(codes), batch_size):
                x = torch.from_numpy(reference.codes_to_one_hot(codes[start : start + batch_size]))
                pred = model(x.to(model.device), logits=True).float().cpu().numpy()
                if out is None:
                    out = np.memmap(self.path, dtype=np.float32, mode="w+", shape=(len(codes), *pred.shape[1:]))
                out[start : start + len(pred)] = pred
        out.flush()
        model.train(was_training)
        # Re-open read-only: batches read rows from disk, the teacher never runs again.
        self.logits = np.memmap(self.path, dtype=np.float32, mode="r", shape=out.shape)

    def __len__(self) -> int:
        return len(self.logits)

    def __getitem__(self, idx) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.logits[np.sort(np.atleast_1d(idx))]))


def reference_windows(model, split: str = "train", seq_len: int | None = None):
    """Crops of the bundled hg38 windows at the model's input length, with real tracks if they fit.

    Returns
    -------
    tuple
        ``codes`` (n, seq_len) uint8, ``targets`` (n, tracks, positions) float32 in the model's
        output space or None (a model whose tracks are not the bundled ones: use pseudo-replay),
        and ``groups`` (n,) the window each crop comes from.
    """
    from genocl_plugin.pretrain import output_bins, reference_targets

    data_params = getattr(model, "data_params", {}) or {}
    seq_len = int(seq_len or data_params.get("train", {}).get("seq_len") or 0)
    if seq_len <= 0:
        raise input_error("replay", "seq_len", "the model records no input length", "pass seq_len=...")
    arch = data_params.get("arch")
    n_tasks = len(data_params.get("tasks", {}).get("name", []))
    real = (arch == "enformer" and n_tasks == 74 and getattr(model, "bin_size", 0) == reference.BIN_SIZE) or (
        arch == "procapnet" and n_tasks == 2)
    n_bins = output_bins(model) if real else seq_len // reference.BIN_SIZE
    codes, targets = reference.window_crops(split, seq_len, n_bins=n_bins)
    # window_crops tiles every window into the same number of crops, in window order
    n_windows = len(reference.load_windows()[f"{split}_seq"])
    groups = np.arange(len(codes)) // max(len(codes) // n_windows, 1)
    if not real:
        return codes, None, groups
    targets = reference_targets(arch, targets).astype(np.float32)
    if arch == "procapnet":
        # base-resolution profile, each 32-bp bin spread over its bases (as in pretraining)
        targets = np.repeat(targets, reference.BIN_SIZE, axis=-1) / reference.BIN_SIZE
    return codes, targets, groups


def fill_buffer(codes: np.ndarray, targets: np.ndarray | None, groups: np.ndarray, budget_mb: float,
                policy: str = "reservoir", seed: int = 0, keys: list[int] | None = None,
                extra_item_nbytes: int = 0):
    """Stream the reference crops through a buffer policy within ``budget_mb``.

    ``keys`` restores a buffer saved by a previous update (the same crops, no resampling).
    ``extra_item_nbytes`` counts per-item memory held elsewhere (the teacher's cached rows).

    Raises
    ------
    GenoclInputError
        The budget holds more windows than exist, or an unknown policy.
    """
    item_nbytes = codes[0].nbytes + (targets[0].nbytes if targets is not None else 0) + extra_item_nbytes
    capacity = capacity_for_budget(budget_mb, item_nbytes)
    if capacity > len(codes):
        most = len(codes) * item_nbytes / 2**20
        raise input_error("--replay-budget-mb", str(budget_mb),
                          f"holds {capacity} windows but only {len(codes)} reference windows exist",
                          f"use at most {most:.2f} MB")
    if capacity < 1:
        raise input_error("--replay-budget-mb", str(budget_mb), "smaller than one window",
                          f"use at least {item_nbytes / 2**20:.3f} MB")
    if policy not in ("reservoir", "balanced"):
        raise input_error("--replay-policy", str(policy), "unknown policy", "use reservoir or balanced")
    buffer = (ReservoirBuffer if policy == "reservoir" else BalancedBuffer)(capacity, seed=seed)
    order = keys if keys is not None else np.random.default_rng(seed).permutation(len(codes))
    for i in order:
        item = (codes[i],) if targets is None else (codes[i], targets[i])
        buffer.add(int(i), item, group=int(groups[i]))
    return buffer
