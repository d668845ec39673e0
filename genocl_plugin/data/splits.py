"""Hold-out splits of a screen: by element, by position blocks within elements, and subsampling.

:func:`split_by_element` holds out whole elements (the out-of-distribution test: no element
leaks); :func:`split_by_position_blocks` holds out blocks of positions inside the training
elements (the in-distribution test); :func:`subsample_per_element` caps the rows per element.
The assay-specific splits live with their assay (``split_activity``, ``split_personal``,
``split_tracks``); :func:`genocl_plugin.data.screens.prepare_screen` chooses among them.
"""

from __future__ import annotations

import numpy as np


def split_by_element(adata, test_fraction: float = 0.25, seed: int = 0, test_elements=None):
    """Split a screen into train and held-out rows by element, so no element leaks.

    Parameters
    ----------
    adata
        The screen.
    test_fraction
        Fraction of elements held out (at least one), when ``test_elements`` is None.
    seed
        Seed of the element shuffle.
    test_elements
        Explicit held-out elements (overrides ``test_fraction``).

    Returns
    -------
    tuple of anndata.AnnData
        ``(train, test)``, each a copy.
    """
    key = "element" if adata.uns["assay"] == "mpra" else "elements"
    groups = np.array(sorted(adata.obs[key].astype(str).unique()))
    if test_elements is None:
        if len(groups) < 2:
            return adata.copy(), adata[:0].copy()
        rng = np.random.default_rng(seed)
        n_test = max(1, int(round(test_fraction * len(groups))))
        test_elements = rng.permutation(groups)[:n_test]
    is_test = adata.obs[key].astype(str).isin(set(test_elements)).to_numpy()
    return adata[~is_test].copy(), adata[is_test].copy()


def split_by_position_blocks(adata, test_fraction: float = 0.2, block_bp: int = 50, gap_bp: int = 10,
                             seed: int = 0):
    """In-distribution split of an MPRA screen: hold out blocks of positions within each element.

    Each element's positions are cut into contiguous ``block_bp`` blocks and a ``test_fraction``
    of the blocks is held out, so the test variants sit in elements the model trains on but
    not next to a training variant: training rows closer than ``gap_bp`` to a held-out
    position of the same element are dropped. Screens without per-element positions (CRISPRi)
    have no such split and return an empty test set.

    Parameters
    ----------
    adata
        The (training) screen.
    test_fraction
        Fraction of each element's blocks held out (at least one block when the element has two).
    block_bp
        Block length in bp.
    gap_bp
        Guard band between held-out and training positions.
    seed
        Seed of the block draw.

    Returns
    -------
    tuple of anndata.AnnData
        ``(train, test)``, each a copy.
    """
    if adata.uns.get("assay") != "mpra" or "pos" not in adata.obs or test_fraction <= 0:
        return adata.copy(), adata[:0].copy()
    rng = np.random.default_rng(seed)
    elements = adata.obs["element"].astype(str).to_numpy()
    pos = adata.obs["pos"].to_numpy().astype(int)
    blocks = pos // block_bp
    is_test, drop = np.zeros(len(pos), bool), np.zeros(len(pos), bool)
    for element in sorted(set(elements)):
        mask = elements == element
        ids = np.unique(blocks[mask])
        if len(ids) < 2:
            continue
        n_test = min(max(int(round(test_fraction * len(ids))), 1), len(ids) - 1)
        held = mask & np.isin(blocks, rng.choice(ids, n_test, replace=False))
        is_test |= held
        test_pos = np.unique(pos[held])
        nearest = np.abs(pos[mask & ~held][:, None] - test_pos[None, :]).min(1)
        drop[np.flatnonzero(mask & ~held)[nearest < gap_bp]] = True
    return adata[~is_test & ~drop].copy(), adata[is_test].copy()


def subsample_per_element(adata, max_per_element: int | None, seed: int = 0):
    """Keep at most ``max_per_element`` rows of each element (random, seeded)."""
    if not max_per_element:
        return adata
    key = "element" if adata.uns["assay"] == "mpra" else "elements"
    rng = np.random.default_rng(seed)
    keep = []
    for _, idx in adata.obs.groupby(adata.obs[key].astype(str), observed=True).indices.items():
        idx = np.asarray(idx)
        keep.extend(rng.choice(idx, size=min(len(idx), max_per_element), replace=False))
    return adata[np.sort(np.array(keep, dtype=int))].copy()
