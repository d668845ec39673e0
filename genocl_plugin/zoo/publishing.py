"""Publish a model as a zoo entry: write every file into a temporary folder, check it with
Kipoi, then move it into place."""

from __future__ import annotations

import datetime
import json
import os
import shutil
from pathlib import Path

from genocl_plugin import __version__
from genocl_plugin.data.fileio import atomic_dir, claim, is_jsonable, seal, sha256sum
from genocl_plugin.errors import input_error
from genocl_plugin.zoo.cards import model_card
from genocl_plugin.zoo.checksums import load_entry_model, md5sum
from genocl_plugin.zoo.examples import config_reference_fasta, write_examples
from genocl_plugin.zoo.kipoi_yaml import _write_yaml, dataloader_yaml, model_yaml
from genocl_plugin.zoo.names import ENTRY_MODULE, _slug, default_name, resolve_name, validate_entry_name
from genocl_plugin.zoo.registry import kipoi_test, verify_entry

_ENTRY_MODULE_TEXT = f'''"""Kipoi imports this entry's ``defined_as`` classes from here (genocl_plugin/zoo.py)."""

from genocl_plugin.zoo import GenoclKipoiModel, IntervalFastaDataset  # noqa: F401

# genocl {__version__}
'''


def publish(run_or_model_dir: str | os.PathLike, zoo_dir: str | os.PathLike, name: str | None = None,
            force: bool = False, authors: list[str] | None = None, check: bool = True,
            example_fasta: str | os.PathLike | None = None, example_region: str | None = None) -> Path:
    """Write a Kipoi model-zoo entry for a model, atomically.

    Parameters
    ----------
    run_or_model_dir
        A run directory (``genocl update --out``), a genocl model directory, a bundled name
        (``enformer`` / ``procapnet``) or any checkpoint :func:`genocl_plugin.models.load_model`
        reads.
    zoo_dir
        The zoo root (e.g. ``model_zoo``); the entry goes to ``zoo_dir / name``.
    name
        ``group/model-vN``. Without ``-vN`` the next free version is used; None derives
        ``<base model>/<screens>`` (or ``<base model>/base``) from the model's lineage.
    force
        Replace an existing version (otherwise publishing an existing version is an error).
    authors
        ``info.authors`` names (default: ``genocl``).
    check
        Run Kipoi's own ``kipoi test`` on the entry before it is moved into place.
    example_fasta, example_region
        ``--example-fasta`` / ``--example-region``: the genome (and region) the example files
        are cut from at the model's input length (default: the reference FASTA the model's
        updates used, else genocl's bundled 524,288-bp hg38 piece).

    Returns
    -------
    Path
        The entry directory.

    Raises
    ------
    GenoclInputError
        Unloadable model, invalid name, an existing version without ``force``, or a failed
        Kipoi check (nothing is left behind in that case).
    """
    from genocl_plugin.models import load_model, read_config, resolve_model_dir

    zoo_path = Path(zoo_dir)
    if zoo_path.exists() and not zoo_path.is_dir():
        raise input_error(zoo_dir, "--zoo", "is a file, not a directory", "pass the zoo root directory")
    if name is not None:  # before the model loads; `--name ''` is refused, not replaced by the default
        validate_entry_name(name, "--name")
    source = Path(run_or_model_dir)
    if (source / "model.yaml").is_file():  # re-publishing an entry: its files must be the published ones
        bad = [label for label, ok in verify_entry(source).items() if not ok]
        if bad:
            raise input_error(source, "checksums", f"{', '.join(bad)} differ from model.yaml (edited or damaged)",
                              "restore the entry's files, or publish from the original run directory")
    model = load_model(run_or_model_dir)
    model_dir = resolve_model_dir(run_or_model_dir)
    if model_dir is not None:
        config = read_config(model_dir)
    else:
        config = _imported_config(model, run_or_model_dir)
    name = resolve_name(zoo_dir, default_name(config) if name is None else name, force=force)
    entry = Path(zoo_dir) / name
    with claim(entry, "--name"), atomic_dir(entry, force=force) as tmp:
        write_entry(tmp, model, config, name, model_dir=model_dir, source=str(run_or_model_dir),
                    authors=authors, zoo_label=Path(zoo_dir).name or "model_zoo",
                    example_fasta=example_fasta, example_region=example_region)
        if check:
            kipoi_test(tmp)
    return entry


def _imported_config(model, source: str | os.PathLike) -> dict:
    from genocl_plugin.models import FORMAT

    path = Path(source)
    step = {"step": "import", "source": str(source)}
    if path.is_file():
        step["sha256"] = sha256sum(path)
    return {
        "format": FORMAT, "model_params": model.model_params,
        "train_params": {k: v for k, v in model.train_params.items() if is_jsonable(v)},
        "data_params": model.data_params, "name": _slug(path.stem or path.name),
        "lineage": [step], "screens_seen": [],
    }



def write_entry(out: Path, model, config: dict, name: str, model_dir: Path | None = None,
                source: str = "", authors: list[str] | None = None,
                zoo_label: str = "model_zoo", example_fasta: str | os.PathLike | None = None,
                example_region: str | None = None) -> Path:
    """Write every file of an entry into ``out`` (an empty, temporary directory).

    Parameters
    ----------
    out
        Directory to fill.
    model
        The loaded model (its weights are saved when ``model_dir`` is None).
    config
        Its genocl config (lineage, screens, metrics).
    name
        Entry name (``group/model-vN``).
    model_dir
        The genocl model directory the weights are copied from byte for byte (None: save
        ``model``'s state dict).
    source
        What was published (recorded in ``config.json``).
    authors
        ``info.authors`` names.
    zoo_label
        How the README refers to the zoo root.
    example_fasta, example_region
        Where the example files are cut (:func:`example_sequence`); default the reference FASTA
        the model's updates used, else genocl's bundled hg38 piece.

    Returns
    -------
    Path
        ``out``.
    """
    out = Path(out)
    weights = out / "model.safetensors"
    if model_dir is not None:
        shutil.copyfile(Path(model_dir) / "model.safetensors", weights)
    else:
        from genocl_plugin.models import save_weights

        save_weights(model.model, weights)  # tied tensors once (enformer-pytorch)
    config = dict(config)
    config["published"] = {
        "name": name, "source": source, "genocl_version": __version__,
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    (out / "config.json").write_text(json.dumps(seal(config), indent=2, default=str))
    (out / f"{ENTRY_MODULE}.py").write_text(_ENTRY_MODULE_TEXT)
    # Expected outputs come from the entry's own files, so they match its weights even if the
    # source directory changed after it was first loaded.
    model = load_entry_model(out / "config.json", weights)
    inputs, preds = write_examples(out / "example_files", model,
                                   fasta=example_fasta or config_reference_fasta(config), region=example_region)
    checksums = {"sha256": sha256sum(weights), "md5": md5sum(weights),
                 "config_sha256": sha256sum(out / "config.json")}
    card = model_dir / "MODEL_CARD.md" if model_dir is not None else None
    base_card = card.read_text() if card is not None and card.exists() else ""
    _write_yaml(out / "model.yaml", model_yaml(model, config, name, checksums, preds, authors))
    _write_yaml(out / "dataloader.yaml", dataloader_yaml(model, authors))
    (out / "README.md").write_text(model_card(model, config, name, checksums, base_card, zoo_label))
    licence = base_licence_text(model.data_params.get("arch", ""))
    if licence:  # the base weights' own licence (Puffin: academic research use only) goes with every entry
        (out / "LICENSE").write_text(licence)
    return out


def base_licence_text(arch: str) -> str:
    """The licence notice of a base model's weights that a derived entry must carry ("" for genocl's MIT)."""
    from genocl_plugin.models.puffin import LICENCE_NOTICE, LICENCE_TEXT

    return LICENCE_NOTICE + "\n\n" + LICENCE_TEXT if arch == "puffin" else ""

