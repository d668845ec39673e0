"""Perturbation screens as AnnData (.h5ad): the one entry point, and the screen split of an update.

Every assay's screen is read, validated, converted and split through this module; each part
lives in the module of its one job, and this module re-exports them all (``from
genocl_plugin.data import screens`` keeps working):

- :mod:`~genocl_plugin.data.layout`: the assays and their fields (``docs/screen_format.md``),
  :func:`read_screen`, :func:`validate_screen` (dispatching to each assay's checks) and
  :func:`write_screen`.
- :mod:`~genocl_plugin.data.checks`: field checks every assay uses (:func:`validate_numeric`,
  :func:`validate_unique_rows`, :func:`validate_alleles_differ`, :func:`validate_sequence`).
- :mod:`~genocl_plugin.data.intervals`: :func:`parse_interval`, :func:`parse_interval_1based`.
- :mod:`~genocl_plugin.data.mpra`: :func:`from_satmut` (Kircher et al. 2019) and
  :func:`read_fasta_records`.
- :mod:`~genocl_plugin.data.crispri`: the model-geometry fit of CRISPRi pairs
  (:func:`crispri_window_start`, :func:`drop_unfit_crispri`, ...) and :func:`from_crispri`.
- :mod:`~genocl_plugin.data.activity`: :func:`from_activity`, :func:`split_activity`,
  :func:`reverse_complement`.
- :mod:`~genocl_plugin.data.splits`: :func:`split_by_element`, :func:`split_by_position_blocks`,
  :func:`subsample_per_element`.
- :mod:`~genocl_plugin.data.personal`, :mod:`~genocl_plugin.data.tracks`: the personal-genome
  and track-crop assays.

This module itself holds the bundled screens and :func:`prepare_screen`, which reads the screen
of an update and splits it with its assay's split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genocl_plugin.data.activity import _COMPLEMENT as _COMPLEMENT
from genocl_plugin.data.activity import _read_table as _read_table
from genocl_plugin.data.activity import from_activity, reverse_complement, split_activity
from genocl_plugin.data.checks import _numeric_columns as _numeric_columns
from genocl_plugin.data.checks import validate_alleles_differ, validate_numeric, validate_sequence, validate_unique_rows
from genocl_plugin.data.crispri import _fit_message as _fit_message
from genocl_plugin.data.crispri import _output_span as _output_span
from genocl_plugin.data.crispri import (
    crispri_fit,
    crispri_window_start,
    drop_unfit_crispri,
    format_cell_types,
    from_crispri,
    readout_half_width,
    record_cell_type,
)
from genocl_plugin.data.intervals import _INTERVAL as _INTERVAL
from genocl_plugin.data.intervals import parse_interval, parse_interval_1based
from genocl_plugin.data.layout import (
    ACTIVITY_COLUMNS,
    ACTIVITY_SPLITS,
    ASSAYS,
    CRISPRI_COLUMNS,
    MPRA_COLUMNS,
    read_screen,
    validate_screen,
    write_screen,
)
from genocl_plugin.data.layout import _validate_activity as _validate_activity
from genocl_plugin.data.layout import _validate_crispri as _validate_crispri
from genocl_plugin.data.layout import _validate_mpra as _validate_mpra
from genocl_plugin.data.mpra import from_satmut, read_fasta_records
from genocl_plugin.data.personal import _validate_personal as _validate_personal
from genocl_plugin.data.splits import split_by_element, split_by_position_blocks, subsample_per_element
from genocl_plugin.errors import input_error

# The ``_name as _name`` imports keep the private helpers importable from here, as before the split.
__all__ = [
    "ACTIVITY_COLUMNS", "ACTIVITY_SPLITS", "ASSAYS", "BUNDLED_MAX_EVAL", "BUNDLED_MAX_TRAIN", "BUNDLED_SCREENS",
    "CRISPRI_COLUMNS", "KIRCHER_ENHANCERS", "KIRCHER_PROMOTERS", "MPRA_COLUMNS", "crispri_fit",
    "crispri_window_start", "default_screen", "drop_unfit_crispri", "format_cell_types", "from_activity",
    "from_crispri", "from_satmut", "parse_interval", "parse_interval_1based", "prepare_screen", "read_fasta_records",
    "read_screen", "readout_half_width", "record_cell_type", "reverse_complement", "split_activity",
    "split_by_element", "split_by_position_blocks", "subsample_per_element", "validate_alleles_differ",
    "validate_numeric", "validate_screen", "validate_sequence", "validate_unique_rows", "write_screen",
]

# Kircher et al. 2019 element groups used for the bundled screens. One experiment per
# underlying sequence (LDLR not LDLR.2, PKLR-24h not -48h, TERT-HEK only, SORT1 only,
# ZRSh-13 not h2) so that holding out an element cannot leak its replicate into training.
KIRCHER_ENHANCERS = (
    "BCL11A", "IRF4", "IRF6", "MYCrs6983267", "MYCrs11986220", "RET",
    "SORT1", "TCF7L2", "UC88", "ZFAND3", "ZRSh-13",
)
KIRCHER_PROMOTERS = (
    "F9", "FOXE1", "GP1BA", "HBB", "HBG1", "HNF4A", "LDLR", "MSMB", "PKLR-24h", "TERT-HEK",
)


# --- the screen split of an update -----------------------------------------------------------

BUNDLED_SCREENS = {
    "enformer": Path(__file__).resolve().parents[1] / "bundled" / "mpra_enhancers.h5ad",
    "procapnet": Path(__file__).resolve().parents[1] / "bundled" / "mpra_promoters.h5ad",
}
# Subsampling of the bundled screens so the default update finishes in < 3 min on 2 cores.
BUNDLED_MAX_TRAIN = 256
BUNDLED_MAX_EVAL = 192


def default_screen(model) -> Path:
    """The bundled screen that goes with a model's architecture."""
    return BUNDLED_SCREENS.get(model.data_params.get("arch", "enformer"), BUNDLED_SCREENS["enformer"])


def prepare_screen(config, model, in_distribution: bool = False, validation: bool = False):
    """Read, split (by element, then by position blocks) and subsample the screen.

    Activity screens hold out sequences (their ``group``), or follow their ``split`` column
    (:func:`split_activity`); like CRISPRi and personal screens they have no position blocks,
    so ``test_id`` is empty.

    Returns
    -------
    tuple
        ``(path, train, test)`` AnnData screens (``test``: held-out elements, the
        out-of-distribution check), and with ``in_distribution`` also ``test_id``: held-out
        position blocks of the training elements (``config.id_holdout``). With ``validation``
        a last item ``val``: a further ``config.val_holdout`` of the training elements' blocks,
        drawn before ``max_train`` subsamples the rest (so the update's training rows are
        ``max_train`` either way) and capped like the in-distribution check; empty when
        ``val_holdout`` is 0 or the screen has no position blocks.
    """
    path = Path(config.data) if config.data else default_screen(model)
    screen = read_screen(path)
    if screen.uns["assay"] == "crispri":
        # before the split, so the held-out elements are ones the model can be scored on
        screen, message = drop_unfit_crispri(screen, model, path)
        screen.uns["crispri_fit"] = message
    if screen.uns["assay"] == "tracks":
        # Windows, not perturbations: held-out windows are the test; the crops are subsampled
        # when the dataset is built (objectives.screen_dataset max_items).
        from genocl_plugin.data.tracks import split_tracks

        train, test = split_tracks(screen, config.holdout, config.seed)
        if train.n_obs == 0:
            raise input_error(path, "obs['split']", "no training windows", "mark some windows split=train")
        parts = (path, train, test, train[:0].copy()) if in_distribution else (path, train, test)
        return (*parts, _validation_split(train, config, path)[1]) if validation else parts
    if screen.uns["assay"] == "personal":
        from genocl_plugin.data.personal import split_personal

        train, test = split_personal(screen, config.holdout_by, config.holdout, config.seed)
        test_id = train[:0].copy()  # personal screens hold out genes or people, not position blocks
    elif screen.uns["assay"] == "activity":
        # held-out sequences (groups), or the screen's own split; no position blocks (no in-distribution check)
        train, test = split_activity(screen, test_fraction=config.holdout, seed=config.seed)
        test_id = train[:0].copy()
        if train.n_obs == 0:
            raise input_error(path, "obs['split']", "no training rows", "mark some rows split=train")
    else:
        train, test = split_by_element(screen, test_fraction=config.holdout, seed=config.seed)
        train, test_id = split_by_position_blocks(train, config.id_holdout, seed=config.seed)
    train, val = _validation_split(train, config, path) if validation else (train, train[:0].copy())
    bundled = config.data is None
    max_train = config.max_train or (BUNDLED_MAX_TRAIN if bundled else None)
    max_eval = config.max_eval or (BUNDLED_MAX_EVAL if bundled else None)
    train = _subsample(train, max_train, config.seed)
    test = _subsample(test, max_eval, config.seed + 1)
    test_id = _subsample(test_id, config.max_eval_id or max_eval, config.seed + 2)
    val = _subsample(val, config.max_eval_id or max_eval, config.seed + 4)
    if train.n_obs == 0:
        raise input_error(path, "obs", "no training rows after the element hold-out",
                          "use a screen with more elements or --holdout 0")
    parts = (path, train, test, test_id) if in_distribution else (path, train, test)
    return (*parts, val) if validation else parts


def _validation_split(train, config, path):
    """``(train, val)``: ``config.val_holdout`` of the training elements' position blocks set aside.

    Empty ``val`` when ``val_holdout`` is 0; a screen without per-element positions (CRISPRi,
    personal genomes, tracks) is refused then, because it has no blocks to hold out.
    """
    if config.val_holdout <= 0:
        return train, train[:0].copy()
    train, val = split_by_position_blocks(train, config.val_holdout, seed=config.seed + 3)
    if val.n_obs == 0:
        raise input_error(path, "--val-holdout", "this screen has no per-element positions to hold out "
                          "(epoch selection needs an MPRA screen with obs['pos'])", "leave out --val-holdout")
    return train, val


def _subsample(adata, n: int | None, seed: int):
    if not n or adata.n_obs <= n:
        return adata
    idx = np.sort(np.random.default_rng(seed).choice(adata.n_obs, n, replace=False))
    return adata[idx].copy()
