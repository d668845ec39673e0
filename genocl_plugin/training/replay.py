"""Replay storage: buffer policies over reference windows.

The replay data are windows of the reference set (:mod:`genocl_plugin.data.reference`, which also
caches the parent model's predictions on them). A buffer decides *which* windows are kept within
a memory budget (:class:`ReservoirBuffer`: uniform over the stream; :class:`BalancedBuffer`:
equal counts per group, e.g. per region or per task).
"""

from __future__ import annotations

import numpy as np

from genocl_plugin.errors import input_error

# The buffer budget when the user gives none. Its window count is clamped to [1, windows in
# the reference set]: 2 MB holds no 196,608-bp Enformer window with 5,313 pseudo-target tracks
# (9.3 MB each) but thousands of ProCapNet crops, more than a small BED yields.
DEFAULT_BUDGET_MB = 2.0


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


def fill_buffer(n_items: int, item_nbytes: int, groups: np.ndarray, budget_mb: float | None,
                policy: str = "reservoir", seed: int = 0, keys: list[int] | None = None):
    """Choose which reference windows a buffer keeps within ``budget_mb``.

    The windows are offered to the buffer policy in a seeded random order (their contents are
    read afterwards, for the kept ones only, so a reference set of thousands of 196-kb windows
    costs nothing to sample). ``keys`` restores a buffer saved by a previous update.

    Parameters
    ----------
    n_items
        Windows in the reference split.
    item_nbytes
        Memory per kept window (sequence + targets).
    groups
        (n_items,) the region each window comes from (``balanced`` keeps equal shares).
    budget_mb, policy, seed, keys
        Budget (None: :data:`DEFAULT_BUDGET_MB`, clamped to between one window and all of
        them), ``reservoir`` or ``balanced``, seed, saved keys.

    Raises
    ------
    GenoclInputError
        A budget given that holds more windows than exist, or less than one; an unknown policy.
    """
    if budget_mb is None:
        capacity = min(max(capacity_for_budget(DEFAULT_BUDGET_MB, item_nbytes), 1), n_items)
    else:
        capacity = capacity_for_budget(budget_mb, item_nbytes)
    if capacity > n_items:
        most = n_items * item_nbytes / 2**20
        raise input_error("--replay-budget-mb", str(budget_mb),
                          f"holds {capacity} windows but only {n_items} reference windows exist",
                          f"use at most {most:.2f} MB")
    if capacity < 1:
        raise input_error("--replay-budget-mb", str(budget_mb), "smaller than one window",
                          f"use at least {item_nbytes / 2**20:.3f} MB")
    if policy not in ("reservoir", "balanced"):
        raise input_error("--replay-policy", str(policy), "unknown policy", "use reservoir or balanced")
    buffer = (ReservoirBuffer if policy == "reservoir" else BalancedBuffer)(capacity, seed=seed)
    order = keys if keys is not None else np.random.default_rng(seed).permutation(n_items)
    for i in order:
        buffer.add(int(i), (), group=int(groups[i]))
    return buffer


def fill_reference_buffer(reference_set, budget_mb: float | None, policy: str = "reservoir", seed: int = 0,
                          keys: list[int] | None = None, pseudo: bool = True):
    """A buffer of the ``train`` windows of a :class:`~genocl_plugin.data.reference.ReferenceSet`.

    Returns
    -------
    tuple
        The buffer and the kept window indices (int64, in buffer order).
    """
    buffer = fill_buffer(reference_set.size("train"), reference_set.item_nbytes(pseudo),
                         reference_set.groups("train"), budget_mb, policy, seed, keys)
    return buffer, np.asarray(buffer.keys, dtype=np.int64)
