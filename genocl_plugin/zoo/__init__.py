"""Publish genocl models as Kipoi model-zoo entries and load them back through Kipoi.

An entry is a folder anyone can read in a minute, laid out like the entries of the Kipoi
model zoo (kipoi/models)::

    model_zoo/enformer-mini/base-v1/
        model.yaml          Kipoi 0.8.6 model description (args with checksums, info, schema, test)
        dataloader.yaml     interval + FASTA dataloader (kipoiseq ``SeqIntervalDl``-style)
        genocl_kipoi.py     two-line import of the classes below (Kipoi imports ``defined_as`` from here)
        model.safetensors   the weights (never a pickle); sha256 and md5 recorded in model.yaml
        config.json         genocl model config: architecture, tracks, lineage, screens, metrics
        README.md           model card
        example_files/      real hg38 test-window intervals, FASTA, and expected outputs (expected.h5)

``config.json`` + ``model.safetensors`` make the entry a genocl model directory too, so
``genocl update --model model_zoo/enformer-mini/base-v1`` continues its lineage.

Loading is safe: :class:`GenoclKipoiModel` checks the sha256 (and md5) recorded in
``model.yaml`` before it reads a byte of the weights, and reads them with safetensors.
Publishing writes to a temporary folder, runs Kipoi's own ``kipoi test`` on it, and only
then renames it into place; an existing version is never replaced without ``force``.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import shutil
import traceback
from pathlib import Path

import numpy as np
import yaml

from genocl_plugin import __version__
from genocl_plugin.config import strategy_flags
from genocl_plugin.data import reference
from genocl_plugin.data.fileio import (
    atomic_dir,
    atomic_path,
    check_seal,
    claim,
    file_digest,
    is_jsonable,
    read_json_object,
    recover_replaced,
    seal,
    sha256sum,
)
from genocl_plugin.errors import GenoclInputError, input_error
from genocl_plugin.workarounds import full_float32_precision


# --------------------------------------------------------------------------------------
# Kipoi reads its config file (``~/.kipoi/config.yaml``) when it is first imported, and Kipoi
# 0.8.6 crashes there with a bare TypeError / KeyError / YAML error on a malformed one (a YAML
# list, an empty file, ``model_sources`` that is not a mapping). Every zoo command imports Kipoi
# through this module, so that failure is turned into one line naming the file and the fix.
# --------------------------------------------------------------------------------------
def kipoi_config_path() -> Path:
    """The config file Kipoi 0.8.6 reads when imported: ``~/.kipoi/config.yaml`` (``/tmp/.kipoi/``
    when the home directory is not writable, as ``kipoi/config.py`` decides)."""
    base = os.path.expanduser("~")
    if not os.access(base, os.W_OK):
        base = "/tmp"
    return Path(base) / ".kipoi" / "config.yaml"


def kipoi_config_error(err: BaseException) -> GenoclInputError | None:
    """The one-line error for Kipoi failing at import on a malformed config file, or None if it is not that.

    Parameters
    ----------
    err
        What importing Kipoi raised.
    """
    path = kipoi_config_path()
    in_config = any(Path(frame.filename).as_posix().endswith("kipoi/config.py")
                    for frame in traceback.extract_tb(err.__traceback__))
    if not in_config or not path.is_file():
        return None
    fix = f"repair {path} or delete it (Kipoi writes a default one; `genocl zoo register` then adds the zoo)"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return input_error(path, path.name, f"unreadable YAML ({type(exc).__name__})", fix)
    if data is None:
        return input_error(path, path.name, "is empty (Kipoi needs model_sources)", fix)
    if not isinstance(data, dict):
        return input_error(path, path.name, f"is a YAML {type(data).__name__}, not a mapping", fix)
    sources = data.get("model_sources")
    if not isinstance(sources, dict):
        what = "missing" if sources is None else f"is a YAML {type(sources).__name__}, not a mapping"
        return input_error(path, "model_sources", what, fix)
    if isinstance(err, ImportError):  # the file looks right: a broken installation, not the config
        return None
    problem = f"Kipoi cannot load it ({type(err).__name__}: {err})".replace("\n", " ")[:300]
    return input_error(path, "model_sources", problem, fix)


try:
    from kipoi.data import Dataset
    from kipoi.metadata import GenomicRanges
    from kipoi.model import BaseModel
    from kipoi_utils.utils import classproperty
except Exception as _err:
    _config_error = kipoi_config_error(_err)
    if _config_error is None:
        raise
    raise _config_error from None

# --------------------------------------------------------------------------------------
# The one Kipoi workaround (Kipoi 0.8.6 on NumPy 2).
#
# kipoi/writers.py (HDF5BatchWriter, ZarrBatchWriter; used by ``kipoi test -o``,
# ``kipoi predict`` and by :func:`publish` to write test.expect) compares every array's
# dtype with ``np.string_`` / ``np.unicode_``. NumPy 2.0 removed those two names; they were
# plain aliases of ``np.bytes_`` / ``np.str_``, so restoring exactly those aliases gives
# Kipoi the NumPy 1.x behaviour it was written for and changes nothing else. Applied when
# this module is imported, which Kipoi does itself when it loads a genocl entry.
# Regression test: tests/test_zoo.py::test_kipoi_hdf5_writer_works_on_numpy2.
# Kipoi's other breakage (its dependency ``related`` imports ``six`` without declaring it)
# is handled by declaring ``six`` in setup.cfg, not here.
# --------------------------------------------------------------------------------------
_NUMPY_ALIASES_KIPOI_NEEDS = {"string_": "bytes_", "unicode_": "str_"}


def restore_numpy_aliases_for_kipoi() -> list[str]:
    """Re-add the NumPy 1.x aliases Kipoi 0.8.6's writers use, if missing.

    Returns
    -------
    list of str
        The aliases that were added (empty on NumPy 1.x or if already restored).
    """
    added = []
    for old, new in _NUMPY_ALIASES_KIPOI_NEEDS.items():
        if old not in np.__dict__:
            setattr(np, old, getattr(np, new))
            added.append(old)
    return added


restore_numpy_aliases_for_kipoi()

SOURCE_NAME = "genocl"  # the Kipoi source name ``genocl zoo register`` adds to ~/.kipoi/config.yaml
ENTRY_MODULE = "genocl_kipoi"  # the per-entry module Kipoi imports ``defined_as`` from
N_EXAMPLES = 3
SIGNIFICANT_DIGITS = 5  # test.expect tolerance: predictions must agree to ~5 significant digits
_NAME_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_VERSION = re.compile(r"^(?P<stem>.+)-v(?P<version>[0-9]+)$")
_ENTRY_MODULE_TEXT = f'''"""Kipoi imports this entry's ``defined_as`` classes from here (genocl_plugin/zoo.py)."""

from genocl_plugin.zoo import GenoclKipoiModel, IntervalFastaDataset  # noqa: F401

# genocl {__version__}
'''
# Licences of base weights that derived entries inherit (genocl's own code is MIT).
_LICENCES = {"puffin": "Puffin weights: academic research use only, no commercial use (University of Texas "
                       "Southwestern Medical Center); see LICENSE in this entry"}
_CITATIONS = {
    "puffin": "Dudnyk K., Cai D., Shi C., Xu J., Zhou J. Sequence basis of transcription initiation in the "
              "human genome. Science 384, eadj0116 (2024). https://doi.org/10.1126/science.adj0116",
    "enformer": "Avsec Z. et al. Effective gene expression prediction from sequence by integrating "
                "long-range interactions. Nat Methods 18, 1196-1203 (2021). "
                "https://doi.org/10.1038/s41592-021-01252-x ; gReLU: Lal A. et al. gReLU: a "
                "comprehensive framework for DNA sequence modeling and design. Nat Methods (2025). "
                "https://doi.org/10.1038/s41592-025-02868-z",
    "procapnet": "Cochran K. et al. Dissecting the cis-regulatory syntax of transcription initiation "
                 "with deep learning. bioRxiv (2024). https://doi.org/10.1101/2024.05.28.596138 ; "
                 "architecture and losses from bpnet-lite (J. Schreiber)",
    "borzoi": "Linder J. et al. Predicting RNA-seq coverage from DNA sequence as a unifying model of "
              "gene regulation. Nat Genet 57, 949-961 (2025). https://doi.org/10.1038/s41588-024-02053-6",
}


# --------------------------------------------------------------------------------------
# The classes Kipoi instantiates (``defined_as`` in model.yaml / dataloader.yaml)
# --------------------------------------------------------------------------------------
class GenoclKipoiModel(BaseModel):
    """A published genocl model as a Kipoi model; weights are checksum-verified safetensors.

    Parameters
    ----------
    weights
        ``model.safetensors`` (relative paths resolve in the entry; Kipoi loads from there).
    config
        genocl ``config.json`` (architecture, track names, input length).
    sha256
        Expected SHA-256 of ``weights``; checked before the weights are read.
    md5
        Expected MD5 of ``weights`` (what Kipoi's own downloads check); checked if given.
    config_sha256
        Expected SHA-256 of ``config``; checked if given.

    Raises
    ------
    GenoclInputError
        A missing file or a checksum mismatch (the message names the file).
    """

    MODEL_PACKAGE = "genocl"  # Kipoi warns if model.yaml's dependencies do not name it

    def __init__(self, weights: str, config: str, sha256: str, md5: str | None = None,
                 config_sha256: str | None = None) -> None:
        self.weights = Path(weights).resolve()
        self.config_path = Path(config).resolve()
        verify_checksum(self.config_path, config_sha256, "sha256", "args.config_sha256")
        verify_checksum(self.weights, sha256, "sha256", "args.sha256")
        verify_checksum(self.weights, md5, "md5", "args.md5")
        self.model = load_entry_model(self.config_path, self.weights)

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        """Predicted coverage for a batch of one-hot sequences.

        Parameters
        ----------
        x
            (batch, 4, length) one-hot DNA, rows A, C, G, T (N = all zeros). A
            (batch, length, 4) array (kipoiseq's layout) is transposed first.

        Returns
        -------
        np.ndarray
            (batch, tracks, positions) float32, exactly ``model(x, logits=False)``.
        """
        import torch

        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or 4 not in x.shape[1:]:
            raise input_error("predict_on_batch", "x", f"shape {x.shape} is not (batch, 4, length)",
                              "pass one-hot DNA as (batch, 4, length)")
        if x.shape[1] != 4:
            x = x.transpose(0, 2, 1)
        with torch.no_grad():
            return self.model(torch.from_numpy(np.ascontiguousarray(x)), logits=False).cpu().numpy()


class IntervalFastaDataset(Dataset):
    """kipoiseq ``SeqIntervalDl``-style dataloader: BED intervals -> one-hot (4, L) DNA.

    Parameters
    ----------
    intervals_file
        BED file: ``chrom start end [name [score strand]]``, 0-based, half-open.
    fasta_file
        FASTA file (indexed with pyfaidx; the ``.fai`` is built if missing).
    auto_resize_len
        Resize each interval around its centre to this length (the model's input length).
        Bases beyond the contig ends are N (all-zero columns).

    Notes
    -----
    The strand column is kept in the metadata but the sequence is not reverse-complemented
    (kipoiseq's default, ``use_strand=False``): the model predicts both strands itself.
    """

    _PATH_ARGS = ("intervals_file", "fasta_file")

    @classproperty
    def example_kwargs(cls) -> dict:
        """Kipoi's example kwargs with the entry's example files as absolute paths.

        dataloader.yaml writes them relative to the entry (as kipoi/models entries do); Kipoi
        returns them as written, so only ``init_example()`` (which first changes into the entry)
        could open them. Resolved against the entry (``source_dir``), ``Dl(**Dl.example_kwargs)``
        works from any working directory too.
        """
        kwargs = dict(_KIPOI_EXAMPLE_KWARGS.fget(cls))
        source = Path(cls.source_dir or os.getcwd())
        for key in cls._PATH_ARGS:
            value = kwargs.get(key)
            if isinstance(value, str) and not Path(value).is_absolute():
                kwargs[key] = str(source / value)
        return kwargs

    def __init__(self, intervals_file: str, fasta_file: str, auto_resize_len: int | None = None) -> None:
        self.intervals_file = Path(intervals_file).resolve()
        self.fasta = reference.open_fasta(Path(fasta_file).resolve(), field="fasta_file")
        self.auto_resize_len = int(auto_resize_len) if auto_resize_len else None
        self.intervals = read_bed(self.intervals_file)

    def __len__(self) -> int:
        return len(self.intervals)

    def __getitem__(self, index: int) -> dict:
        chrom, start, end, name, strand = self.intervals[index]
        if self.auto_resize_len:
            start = (start + end) // 2 - self.auto_resize_len // 2
            end = start + self.auto_resize_len
        if chrom not in self.fasta:
            raise input_error(self.intervals_file, f"interval {name}", f"contig {chrom!r} not in the FASTA",
                              "use the FASTA of the genome the BED refers to")
        codes = reference.fetch_codes(chrom, start, end, fasta=self.fasta)
        return {
            "inputs": reference.codes_to_one_hot(codes),
            "metadata": {"ranges": GenomicRanges(chrom, start, end, name, strand)},
        }


# Kipoi's own ``example_kwargs`` (a class property of its BaseDataLoader), which the one above extends.
_KIPOI_EXAMPLE_KWARGS = next(k.__dict__["example_kwargs"] for k in Dataset.__mro__ if "example_kwargs" in k.__dict__)


def read_bed(path: str | os.PathLike) -> list[tuple[str, int, int, str, str]]:
    """Read ``chrom start end [name [score strand]]`` rows (``#``/track/browser lines skipped).

    Raises
    ------
    GenoclInputError
        Missing file, fewer than three columns, non-integer or inverted coordinates.
    """
    path = Path(path)
    if not path.exists():
        raise input_error(path, "intervals_file", "not found", "pass an existing BED file")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        fields = line.split("\t")
        try:
            chrom, start, end = fields[0], int(fields[1]), int(fields[2])
        except (IndexError, ValueError):
            raise input_error(path, f"line {number}", "not chrom<TAB>start<TAB>end with integer coordinates",
                              "write a tab-separated BED file") from None
        if end <= start or start < 0:
            raise input_error(path, f"line {number}", f"empty or negative interval {start}-{end}",
                              "use 0-based half-open coordinates with start < end")
        name = fields[3] if len(fields) > 3 and fields[3] else f"{chrom}:{start}-{end}"
        strand = fields[5] if len(fields) > 5 and fields[5] in ("+", "-") else "*"
        rows.append((chrom, start, end, name, strand))
    if not rows:
        raise input_error(path, "intervals_file", "no intervals", "add at least one BED row")
    return rows


# --------------------------------------------------------------------------------------
# Checksums and loading
# --------------------------------------------------------------------------------------
def md5sum(path: str | os.PathLike) -> str:
    """Hex MD5 of a file (the hash Kipoi records for downloaded files)."""
    return file_digest(path, "md5")


def verify_checksum(path: Path, expected: str | None, algorithm: str, field: str) -> None:
    """Raise unless ``path`` exists and hashes to ``expected`` (skipped when ``expected`` is None).

    Raises
    ------
    GenoclInputError
        Missing file, or a mismatch; the message names the file and says it was not loaded.
    """
    if not path.exists():
        raise input_error(path, "model.yaml", "file listed in the entry is missing",
                          "re-download or re-publish the entry")
    if expected is None:
        return
    actual = sha256sum(path) if algorithm == "sha256" else md5sum(path)
    if actual != str(expected).lower():
        raise input_error(
            path, field, f"{algorithm} mismatch: file is {actual[:16]}..., model.yaml records "
            f"{str(expected)[:16]}...; the file was NOT loaded",
            "the file was modified or corrupted: re-download or re-publish the entry",
        )


def load_entry_model(config_path: Path, weights_path: Path):
    """Build a :class:`~genocl_plugin.models.GenoclLightningModel` from config + safetensors.

    Returns
    -------
    GenoclLightningModel
        In eval mode, with ``genocl_config`` set.
    """
    from genocl_plugin.models import GenoclLightningModel, load_weights

    config = check_seal(read_json_object(config_path, "config.json"), config_path)
    try:
        model = GenoclLightningModel(dict(config["model_params"]), dict(config["train_params"]))
        model.data_params = config["data_params"]
        load_weights(model.model, weights_path)
    except Exception as err:
        raise input_error(weights_path, "weights", f"cannot load ({type(err).__name__}: {err})".replace("\n", " "),
                          "re-publish the entry from its run directory") from None
    model.genocl_config = config
    model.eval()
    return model


# --------------------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------------------
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


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-.")
    return slug or "model"


def default_name(config: dict) -> str:
    """``<base model>/<screens>`` from a genocl config (no version: the next one is used).

    The base model is the part of ``config["name"]`` before the first ``+`` (genocl names an
    updated model ``base+screen``); the model part joins the stems of the screens seen, or
    is ``base`` for a model that has seen none.
    """
    base = _slug(str(config.get("name") or config.get("data_params", {}).get("arch", "model")).split("+")[0])
    screens = [Path(str(s.get("path", "screen"))).stem for s in config.get("screens_seen", [])]
    return f"{base}/{_slug('+'.join(screens)) if screens else 'base'}"


def resolve_name(zoo_dir: str | os.PathLike, name: str, force: bool = False) -> str:
    """Validate an entry name and fix its version.

    Parameters
    ----------
    zoo_dir
        Zoo root.
    name
        ``group/model`` or ``group/model-vN`` (``/``-separated parts of letters, digits, ``._+-``).
    force
        Allow an existing ``-vN`` (it will be replaced).

    Returns
    -------
    str
        The name with a version: the one given, or the next free one.

    Raises
    ------
    GenoclInputError
        Invalid name, or an existing version without ``force``.
    """
    parts = validate_entry_name(name, "--name").split("/")
    match = _VERSION.match(parts[-1])
    stem = match["stem"] if match else parts[-1]
    prefix = Path(zoo_dir, *parts[:-1])
    taken = [int(m["version"]) for p in (prefix.iterdir() if prefix.is_dir() else [])
             if (m := _VERSION.match(p.name)) and m["stem"] == stem and (p / "model.yaml").exists()]
    next_name = "/".join([*parts[:-1], f"{stem}-v{max(taken, default=0) + 1}"])
    if match is None:
        return next_name
    full = "/".join(parts)
    if Path(zoo_dir, full).exists() and not force:
        raise input_error(Path(zoo_dir, full), "--name", "this version is already published",
                          f"publish as {next_name} (or omit -vN) or pass --force to replace it")
    return full


def validate_entry_name(name: str, field: str = "NAME") -> str:
    """Check an entry name: ``/``-separated parts of letters, digits, ``._+-``, each starting with a
    letter or digit, so a name can never be absolute or climb out of the zoo with ``..``.

    Returns
    -------
    str
        The name without leading / trailing slashes.
    """
    text = str(name)
    fix = "use group/model-v1: parts of letters, digits, '.', '_', '+', '-' separated by '/'"
    if not text.strip(" /"):  # shown quoted: an empty name would leave the line's first field blank
        raise input_error(repr(text), field, "invalid entry name (empty)", fix)
    parts = text.strip("/").split("/")
    if text.startswith("/") or not parts or not all(_NAME_PART.match(p) for p in parts):
        raise input_error(name, field, "invalid entry name (entry names are relative, without '..')", fix)
    return "/".join(parts)


def _yaml_mapping(path: Path) -> dict:
    """A YAML file that must hold a mapping (model.yaml, Kipoi's config)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise input_error(path, path.name, f"unreadable YAML ({type(err).__name__})",
                          "restore the file (re-publish the entry, or fix Kipoi's config)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise input_error(path, path.name, f"holds a YAML {type(data).__name__}, not a mapping",
                          "restore the file (re-publish the entry, or fix Kipoi's config)")
    return data


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


_REGION = re.compile(r"^(?P<chrom>[^:\s]+):(?P<start>[0-9,]+)-(?P<end>[0-9,]+)$")
EXAMPLE_MAX_N = 0.5  # a FASTA example window with more N than this is refused (pick a region)
EXAMPLE_SCAN_CHUNKS = 64  # how far into a FASTA the default example search looks


def parse_region(text: str, field: str = "--example-region") -> tuple[str, int, int]:
    """``chr:start-end`` (1-based inclusive, commas allowed) -> ``(chrom, start0, end)``."""
    match = _REGION.match(str(text).strip())
    start = int(match["start"].replace(",", "")) if match else 0
    end = int(match["end"].replace(",", "")) if match else 0
    if match is None or start < 1 or end < start:
        raise input_error(field, "region", f"{text!r} is not chr:start-end", "write e.g. chr2:1,000,001-1,600,000")
    return match["chrom"], start - 1, end


def config_reference_fasta(config: dict) -> str | None:
    """The newest ``--reference-fasta`` an update of this model was given, if it still exists."""
    for step in reversed(config.get("lineage") or []):
        path = ((step or {}).get("hyperparameters") or {}).get("reference_fasta")
        if path and Path(path).is_file():
            return str(path)
    return None


def _example_starts(available: int, seq_len: int, n: int) -> list[int]:
    """Up to ``n`` distinct window starts evenly spread over the central ``n * seq_len`` bp."""
    span = min(available, n * seq_len)
    first = (available - span) // 2
    if n == 1 or span == seq_len:
        return [first]
    step = (span - seq_len) / (n - 1)
    return sorted({first + round(i * step) for i in range(n)})


def example_sequence(seq_len: int, n: int = N_EXAMPLES, fasta: str | os.PathLike | None = None,
                     region: str | None = None) -> tuple[str, int, np.ndarray, list[int], str]:
    """Real hg38 sequence for ``n`` example windows of ``seq_len`` bp (the model's input length).

    Parameters
    ----------
    seq_len
        The model's input length.
    n
        Number of windows (fewer when the sequence is shorter than ``n * seq_len``: they then
        overlap, and a sequence exactly ``seq_len`` long gives one).
    fasta
        An indexed genome FASTA to cut them from (``--example-fasta``, or the reference FASTA
        the model's updates used); None: genocl's bundled 524,288-bp hg38 piece.
    region
        ``chr:start-end`` (1-based) inside ``fasta``; default the first stretch of the FASTA
        with < 1% N.

    Returns
    -------
    tuple
        ``(chrom, start, codes, offsets, source)``: the stretch's contig and 0-based start, its
        uint8 codes, each window's offset in it, and a description of where it came from.

    Raises
    ------
    GenoclInputError
        The input is longer than the sequence (or region), the region is not in the FASTA,
        or the windows are mostly N.
    """
    if fasta is None:
        if region is not None:
            raise input_error("--example-region", "region", "needs a genome to cut it from",
                              "pass --example-fasta GENOME.fa with it")
        chrom, start, codes = reference.load_bundled_piece()
        if seq_len > len(codes):
            raise input_error(
                "--example-fasta", "example sequence",
                f"the model's {seq_len:,}-bp input is longer than genocl's bundled {len(codes):,}-bp hg38 piece",
                "pass --example-fasta GENOME.fa (and --example-region chr:start-end)")
        offsets = _example_starts(len(codes), seq_len, n)
        lo, hi = offsets[0], offsets[-1] + seq_len
        return chrom, start + lo, codes[lo:hi], [o - lo for o in offsets], "genocl bundled hg38 piece"
    genome = reference.open_fasta(fasta, field="--example-fasta")
    if region is not None:
        chrom, lo, hi = parse_region(region)
        if chrom not in genome or hi > len(genome[chrom]):
            raise input_error(fasta, "--example-region", f"{region} is not inside the FASTA",
                              "pass a region of one of its contigs")
        candidates = [(chrom, lo, hi)]
    else:
        # The first stretch of n windows with < 1% N (contig starts are telomere gaps).
        need = n * seq_len
        candidates = [(c, p, min(p + need, len(genome[c]))) for c in genome.keys()
                      for p in range(0, max(len(genome[c]) - seq_len, 0) + 1, need)][:EXAMPLE_SCAN_CHUNKS]
    best = None
    for chrom, lo, hi in candidates:
        if hi - lo < seq_len:
            continue
        offsets = _example_starts(hi - lo, seq_len, n)
        a, b = lo + offsets[0], lo + offsets[-1] + seq_len
        codes = reference.fetch_codes(chrom, a, b, fasta=genome)
        frac = max(float(np.mean(codes[o - offsets[0] : o - offsets[0] + seq_len] == 4)) for o in offsets)
        if best is None or frac < best[0]:
            best = (frac, chrom, a, codes, [o - offsets[0] for o in offsets])
        if frac < 0.01:
            break
    if best is None:
        where = region or "any contig"
        raise input_error(fasta, "--example-region", f"{where} is shorter than the model's {seq_len:,}-bp input",
                          "pass a FASTA / region at least as long as the model's input")
    frac, chrom, a, codes, offsets = best
    if frac > EXAMPLE_MAX_N:
        raise input_error(fasta, "--example-region", f"the example windows at {chrom}:{a + 1} are {frac:.0%} N",
                          "pass --example-region chr:start-end over real sequence")
    return chrom, a, codes, offsets, Path(fasta).name


def write_examples(out: Path, model, n: int = N_EXAMPLES, fasta: str | os.PathLike | None = None,
                   region: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Write example intervals, FASTA (+ .fai) and expected outputs (``expected.h5``).

    The examples are real sequence at the model's input length (:func:`example_sequence`):
    cut from ``fasta`` (``--example-fasta`` / the model's reference FASTA) or from genocl's
    bundled hg38 piece. The FASTA holds one contig, ``<chrom>_<start>_<end>``; the BED holds
    the windows on it. The expected outputs are genocl's own predictions
    (``model(x, logits=False)``) written with Kipoi's ``HDF5BatchWriter`` in the ``inputs`` /
    ``preds`` layout ``kipoi test`` reads.

    Returns
    -------
    tuple of np.ndarray
        ``inputs`` (n, 4, L) and ``preds`` (n, tracks, positions).
    """
    import pyfaidx
    from kipoi.writers import HDF5BatchWriter

    from genocl_plugin.evaluation import evaluate

    out.mkdir(parents=True)
    seq_len = int(model.seq_len)
    chrom, start, codes, offsets, source = example_sequence(seq_len, n, fasta=fasta, region=region)
    end = start + len(codes)
    contig = f"{chrom}_{start}_{end}"
    seq = reference.codes_to_seq(codes)
    lines = [f">{contig} {chrom}:{start + 1}-{end} ({source})"]
    lines += [seq[i : i + 60] for i in range(0, len(seq), 60)]
    (out / "sequence.fa").write_text("\n".join(lines) + "\n")
    pyfaidx.Faidx(str(out / "sequence.fa")).close()  # writes sequence.fa.fai beside it
    bed = [f"{contig}\t{o}\t{o + seq_len}\t{chrom}:{start + o + 1}-{start + o + seq_len}" for o in offsets]
    (out / "intervals.bed").write_text("\n".join(bed) + "\n")
    inputs = reference.codes_to_one_hot(np.stack([codes[o : o + seq_len] for o in offsets])).astype(np.float32)
    with full_float32_precision():  # Kipoi's test recomputes these in a fresh process (workarounds.py)
        preds = evaluate.predict(model, inputs).astype(np.float32)
    # Kipoi's default chunk (10,000 rows, gzip) makes this tiny file take seconds to write.
    writer = HDF5BatchWriter(str(out / "expected.h5"), chunk_size=len(offsets))
    writer.batch_write({"inputs": inputs, "preds": preds})
    writer.close()
    return inputs, preds


def precision_decimal(preds: np.ndarray) -> int:
    """Decimals ``kipoi test`` compares to: about :data:`SIGNIFICANT_DIGITS` significant digits."""
    peak = float(np.max(np.abs(preds))) if preds.size else 0.0
    return max(0, SIGNIFICANT_DIGITS - max(0, math.ceil(math.log10(peak + 1.0))))


def _shape(*dims: int) -> str:
    # Kipoi evaluates schema shapes as Python tuples (``null`` fails): write "(4, 2048)".
    return "(" + ", ".join(str(int(d)) for d in dims) + ")"


def _authors(authors: list[str] | None) -> list[dict]:
    return [{"name": a} for a in (authors or ["genocl"])]


def _genocl_requirement(model) -> str:
    # borzoi-pytorch models need the optional dependency (the `borzoi` extra).
    extra = "[borzoi]" if model.model_params.get("model_type") == "BorzoiPytorchTracks" else ""
    return f"genocl{extra}=={__version__}"


def model_yaml(model, config: dict, name: str, checksums: dict, preds: np.ndarray,
               authors: list[str] | None = None) -> dict:
    """The ``model.yaml`` content (Kipoi 0.8.6 ``ModelDescription``)."""
    arch = model.data_params.get("arch", "grelu")
    tracks = list(model.task_names)
    n_out = int(preds.shape[-1])
    steps = [_lineage_text(s) for s in config.get("lineage", [])]
    screens = [Path(str(s.get("path", "?"))).name for s in config.get("screens_seen", [])]
    return {
        "defined_as": f"{ENTRY_MODULE}.GenoclKipoiModel",
        "args": {
            "weights": "model.safetensors", "config": "config.json",
            "sha256": checksums["sha256"], "md5": checksums["md5"],
            "config_sha256": checksums["config_sha256"],
        },
        "default_dataloader": ".",
        "info": {
            "authors": _authors(authors),
            "doc": _doc(model, config, name, n_out),
            "cite_as": _CITATIONS.get(arch, "gReLU: https://doi.org/10.1038/s41592-025-02868-z"),
            "trained_on": "; ".join([_base_data(config)] + [f"screen {s}" for s in screens]),
            "training_procedure": " -> ".join(steps) or "unknown",
            "version": str(_VERSION.match(name.split("/")[-1])["version"]),
            "license": _LICENCES.get(arch, "MIT"),
            "tags": ["genocl", "continual-learning", arch, "DNA", "coverage"],
        },
        "dependencies": {"pip": [_genocl_requirement(model), "kipoi==0.8.6", "torch", "safetensors", "pyfaidx"]},
        "schema": {
            "inputs": {"name": "seq", "shape": _shape(4, model.seq_len), "special_type": "DNASeq",
                       "doc": f"one-hot DNA, rows A, C, G, T (N = all zeros), {model.seq_len} bp"},
            "targets": {"name": "coverage", "shape": _shape(len(tracks), n_out),
                        "doc": f"predicted coverage, {len(tracks)} tracks x {n_out} positions of "
                               f"{model.bin_size} bp (central {n_out * model.bin_size} bp of the input)",
                        "column_labels": tracks},
        },
        "test": {"expect": "example_files/expected.h5", "precision_decimal": precision_decimal(preds)},
    }


def dataloader_yaml(model, authors: list[str] | None = None) -> dict:
    """The ``dataloader.yaml`` content (Kipoi 0.8.6 ``DataLoaderDescription``)."""
    return {
        "defined_as": f"{ENTRY_MODULE}.IntervalFastaDataset",
        "args": {
            "intervals_file": {"doc": "BED file: chrom, start, end [, name [, score, strand]]; 0-based",
                               "example": "example_files/intervals.bed"},
            "fasta_file": {"doc": "genome FASTA (indexed with pyfaidx; .fai built if missing)",
                           "example": "example_files/sequence.fa"},
            "auto_resize_len": {"doc": "resize every interval around its centre to the model's input length",
                                "default": int(model.seq_len), "optional": True, "type": "int"},
        },
        "info": {"authors": _authors(authors),
                 "doc": "kipoiseq SeqIntervalDl-style dataloader: intervals + FASTA -> one-hot (4, L)"},
        "dependencies": {"pip": [f"genocl=={__version__}", "pyfaidx"]},
        "output_schema": {
            "inputs": {"name": "seq", "shape": _shape(4, model.seq_len), "special_type": "DNASeq",
                       "doc": "one-hot DNA, rows A, C, G, T (N = all zeros)"},
            "metadata": {"ranges": {"type": "GenomicRanges", "doc": "the (resized) interval"}},
        },
    }


def _write_yaml(path: Path, data: dict) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True))


def _doc(model, config: dict, name: str, n_out: int) -> str:
    base = str(config.get("name", name)).split("+")[0]
    screens = [Path(str(s.get("path", "?"))).stem for s in config.get("screens_seen", [])]
    what = (f"{base} updated with genocl (strategy: {_strategy_text(config)}) on "
            f"{', '.join(screens)}" if screens else f"{base}, the genocl base model")
    return (f"{what}. Predicts {len(model.task_names)} coverage tracks at {model.bin_size}-bp "
            f"resolution ({n_out} positions) from {model.seq_len} bp of DNA.")


def _strategy_text(config: dict) -> str:
    """``--strategy`` with its hyperparameters as flags (e.g. ``freeze --freeze trunk``)."""
    if not config.get("strategy"):
        return "none (base model)"
    return strategy_flags(config["strategy"], config.get("strategy_params"))


def _base_data(config: dict) -> str:
    lineage = config.get("lineage") or [{}]
    return str(lineage[0].get("data") or lineage[0].get("source") or "unknown base data")


def _lineage_text(step: dict) -> str:
    if step.get("step") == "update":
        return f"update on {Path(str(step.get('screen', '?'))).name} ({step.get('strategy', '?')})"
    detail = step.get("data") or step.get("source") or ""
    return f"{step.get('step', '?')}" + (f" ({detail})" if detail else "")


def _fmt(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else "n/a"
    return "n/a" if value is None else str(value)


def model_card(model, config: dict, name: str, checksums: dict, base_card: str = "",
               zoo_label: str = "model_zoo") -> str:
    """The entry's README.md: base model, lineage, screens, strategy, metrics, limits, use."""
    n_params = sum(p.numel() for p in model.model.parameters())
    n_out = model.output_length(model.seq_len)
    screens = config.get("screens_seen", [])
    lines = [
        f"# {name}", "", _doc(model, config, name, n_out), "",
        "| | |", "|---|---|",
        f"| base model | {str(config.get('name', '?')).split('+')[0]} |",
        f"| architecture | {model.data_params.get('arch', '?')} ({model.model_params.get('model_type')}), "
        f"{n_params:,} parameters |",
        f"| input | one-hot DNA (4, {model.seq_len}) |",
        f"| output | coverage ({len(model.task_names)} tracks, {n_out} positions x {model.bin_size} bp) |",
        f"| screens seen | {', '.join(Path(str(s.get('path'))).name for s in screens) or 'none'} |",
        f"| strategy | {_strategy_text(config)} |",
        f"| weights | `model.safetensors`, sha256 `{checksums['sha256']}`, md5 `{checksums['md5']}` |",
        f"| published with | genocl {__version__}, Kipoi 0.8.6 |",
        "", "## Lineage", "",
    ]
    for i, step in enumerate(config.get("lineage", []), start=1):
        extra = f", screen sha256 `{step['screen_sha256'][:16]}...`" if step.get("screen_sha256") else ""
        when = f", {step['time']}" if step.get("time") else ""
        lines.append(f"{i}. {_lineage_text(step)}{extra}{when}")
    lines += ["", "## Metrics", ""] + _metric_lines(config)
    lines += [
        "", "## Use", "", "```python", "import kipoi",
        f'model = kipoi.get_model("{name}", source="{SOURCE_NAME}")  # after `genocl zoo register`',
        f'# or: kipoi.get_model("{zoo_label}/{name}", source="dir")',
        "model.predict_on_batch(one_hot)  # (batch, 4, L) -> (batch, tracks, positions)",
        "```", "",
        f"Continue training: `genocl update --model {zoo_label}/{name} --data SCREEN.h5ad --out RUN`. "
        f"Check the entry: `genocl zoo test {name} --zoo {zoo_label}` (Kipoi's own `kipoi test`, offline).",
        "", "## Limits", "",
    ]
    if config.get("screens_seen"):
        lines.append("- The new-task and retention numbers come from one update, measured on a small "
                     "held-out split of the screen; they are not a benchmark. Read `n` before "
                     "trusting a correlation.")
    lines += [
        f"- Valid for {model.seq_len}-bp inputs; the example files are real sequence at that length "
        "(see the header of `example_files/sequence.fa`), a check of the entry, not an evaluation.",
        "- Weights load only through safetensors after their sha256 is checked, but Kipoi "
        "evaluates `model.yaml` schema shapes with Python's `eval` and imports `genocl_kipoi.py`: "
        "load entries only from zoos you trust.",
    ]
    if base_card:  # the pretrained model's own MODEL_CARD.md, headings nested under this one
        nested = [f"##{line}" if line.startswith("#") else line for line in base_card.strip().splitlines()]
        lines += ["", "## Base model card", "", *nested]
    return "\n".join(lines) + "\n"


def _metric_lines(config: dict) -> list[str]:
    lines = []
    report = config.get("metrics") or {}
    new = report.get("new_task") or {}
    if new:
        before, after = new.get("before", {}), new.get("after", {})
        lines += ["New task (held-out elements of the screen):", "",
                  "| metric | before | after |", "|---|---|---|"]
        for key in ("pearson", "spearman"):
            lines.append(f"| effect {key} | {_fmt(before.get(key))} | {_fmt(after.get(key))} |")
        lines += [f"| n | {_fmt(before.get('n'))} | {_fmt(after.get('n'))} |", ""]
    retention = report.get("retention") or {}
    if retention:
        lines += ["Retention (held-out reference windows):", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {_fmt(value)} |" for key, value in retention.items()]
        lines.append("")
    test = config.get("test_metrics") or {}
    if test:
        lines += ["Base model, held-out test windows:", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {_fmt(value)} |" for key, value in test.items()]
    return lines or ["No metrics recorded in this model's config."]


# --------------------------------------------------------------------------------------
# Kipoi's own checks, the Kipoi source, and listing
# --------------------------------------------------------------------------------------
def kipoi_test(entry_dir: str | os.PathLike, batch_size: int = 32) -> None:
    """Run Kipoi's checks on an entry, offline: what ``cd ENTRY && kipoi test . --source dir`` does.

    1. ``kipoi.get_model(entry, source="dir")`` with its dataloader (parses model.yaml and
       dataloader.yaml, imports ``defined_as``, verifies the weights' checksums);
    2. Kipoi's model <-> dataloader schema compatibility check;
    3. ``kipoi test``: runs the example files through the dataloader and the model and
       compares the model's predictions on ``test.expect`` inputs with the expected outputs.

    Raises
    ------
    GenoclInputError
        Any check failing (a checksum mismatch keeps its own message).
    """
    import kipoi
    from kipoi.cli.main import cli_test
    from kipoi_utils.utils import cd

    entry = Path(entry_dir).resolve()
    if not (entry / "model.yaml").exists():
        raise input_error(entry, "model.yaml", "not a Kipoi entry", "pass an entry directory of the zoo")
    # Kipoi's `kipoi` console script cannot start on today's stack: kipoi/__main__.py imports
    # pkg_resources, which the installed setuptools (84) no longer ships. So this calls the
    # function behind `kipoi test` (kipoi.cli.main.cli_test) directly, in process.

    try:
        # test.expect is a path relative to the entry, and `kipoi test` reads it from the cwd;
        # the expected outputs were computed at full float32 precision (workarounds.py).
        with cd(str(entry)), full_float32_precision():
            model = kipoi.get_model(".", source="dir")
            if not model.schema.compatible_with_schema(model.default_dataloader.get_output_schema()):
                raise input_error(entry, "schema", "model and dataloader schemas are incompatible",
                                  "re-publish the entry")
            cli_test("test", [".", "--source", "dir", "--batch_size", str(batch_size)])
    except GenoclInputError:
        raise
    except SystemExit as err:
        if err.code:
            raise input_error(entry / "example_files" / "expected.h5", "test.expect",
                              "kipoi test: predictions differ from the expected outputs",
                              "re-publish the entry with this genocl version") from None
    except Exception as err:
        raise input_error(entry, "kipoi test", f"{type(err).__name__}: {err}".replace("\n", " ")[:300],
                          "re-publish the entry; see docs/zoo.md") from None


def register_source(zoo_dir: str | os.PathLike, config_path: str | os.PathLike | None = None,
                    source_name: str = SOURCE_NAME) -> Path:
    """Add the zoo to Kipoi's config as a local source, so ``kipoi.get_model(name, source="genocl")`` works.

    Parameters
    ----------
    zoo_dir
        The zoo root.
    config_path
        Kipoi's config (default ``~/.kipoi/config.yaml``; Kipoi reads it when imported).
        Other sources in it are kept; a missing file starts from Kipoi's default sources.
    source_name
        The source name.

    Returns
    -------
    Path
        The config file written.
    """
    import kipoi

    zoo = Path(zoo_dir).resolve()
    if not zoo.is_dir():
        raise input_error(zoo_dir, "--zoo", "not a directory", "publish a model first or pass the zoo root")
    path = Path(config_path) if config_path else Path.home() / ".kipoi" / "config.yaml"
    config = _yaml_mapping(path) if path.exists() else {}
    if config.get("model_sources") is not None and not isinstance(config["model_sources"], dict):
        raise input_error(path, "model_sources", f"is a YAML {type(config['model_sources']).__name__}, "
                          "not a mapping", "fix or delete Kipoi's config file")
    if not isinstance(config.get("model_sources"), dict):
        defaults = {k: dict(v) for k, v in kipoi.config.model_sources_dict().items() if k != "dir"}
        config["model_sources"] = {**defaults, **(config.get("model_sources") or {})}
    config["model_sources"][source_name] = {"type": "local", "local_path": str(zoo)}
    with atomic_path(path, force=True) as tmp:
        tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    # Kipoi read its config when imported; tell the running process too.
    kipoi.config.add_source(source_name, {"type": "local", "local_path": str(zoo)})
    return path


def list_entries(zoo_dir: str | os.PathLike) -> list[dict]:
    """Summaries of every entry under ``zoo_dir`` (no torch import; reads YAML and JSON only).

    Returns
    -------
    list of dict
        One per entry, sorted by name: see :func:`entry_summary`.
    """
    zoo = Path(zoo_dir)
    if not zoo.is_dir():
        raise input_error(zoo_dir, "--zoo", "not a directory", "pass the zoo root (e.g. model_zoo)")
    entries = []
    for yml in sorted(zoo.rglob("model.yaml")):
        rel = yml.parent.relative_to(zoo)
        if any(part.startswith(".") for part in rel.parts):  # unfinished publishes
            continue
        entries.append(entry_summary(yml.parent, str(rel.as_posix())))
    return entries


def entry_summary(entry_dir: Path, name: str) -> dict:
    """Name, architecture, shapes, lineage, screens, strategy and key metrics of one entry."""
    descr = _yaml_mapping(entry_dir / "model.yaml")
    config = check_seal(read_json_object(entry_dir / "config.json"), entry_dir / "config.json")
    report = config.get("metrics") or {}
    return {
        "name": name, "path": entry_dir, "arch": config.get("data_params", {}).get("arch", "?"),
        "doc": descr.get("info", {}).get("doc", ""),
        "input": descr.get("schema", {}).get("inputs", {}).get("shape", "?"),
        "output": descr.get("schema", {}).get("targets", {}).get("shape", "?"),
        "lineage": [_lineage_text(s) for s in config.get("lineage", [])],
        "screens": [Path(str(s.get("path", "?"))).name for s in config.get("screens_seen", [])],
        "strategy": config.get("strategy"),
        "new_task_pearson": (report.get("new_task") or {}).get("after", {}).get("pearson"),
        "new_task_pearson_before": (report.get("new_task") or {}).get("before", {}).get("pearson"),
        "retention_pearson": (report.get("retention") or {}).get("pearson_after"),
        "retention_ratio": (report.get("retention") or {}).get("retention_ratio"),
        "test_metrics": config.get("test_metrics") or {},
        "args": descr.get("args", {}),
        "published": config.get("published", {}),
    }


def find_entry(zoo_dir: str | os.PathLike, name: str) -> Path:
    """The directory of entry ``name`` (raises a one-line error naming the zoo if absent)."""
    entry = recover_replaced(Path(zoo_dir) / validate_entry_name(name))
    if not (entry / "model.yaml").exists():
        known = ", ".join(e["name"] for e in list_entries(zoo_dir)) or "none"
        raise input_error(entry, "NAME", "no such entry", f"use one of: {known}")
    return entry


def verify_entry(entry_dir: str | os.PathLike) -> dict[str, bool]:
    """Check the weights' and config's recorded checksums without loading anything.

    Returns
    -------
    dict
        ``{"model.safetensors sha256": ok, "model.safetensors md5": ok, "config.json sha256": ok}``.
    """
    entry = Path(entry_dir)
    args = _yaml_mapping(entry / "model.yaml").get("args", {})
    if not isinstance(args, dict):
        raise input_error(entry / "model.yaml", "args", "not a mapping", "re-publish the entry")
    weights, config = entry / str(args.get("weights")), entry / str(args.get("config"))
    return {
        f"{weights.name} sha256": weights.exists() and sha256sum(weights) == args.get("sha256"),
        f"{weights.name} md5": weights.exists() and md5sum(weights) == args.get("md5"),
        f"{config.name} sha256": config.exists() and sha256sum(config) == args.get("config_sha256"),
    }
