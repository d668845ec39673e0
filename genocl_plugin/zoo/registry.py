"""Operate on a published zoo: Kipoi's own checks, the Kipoi source, listing, finding and verifying entries."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from genocl_plugin.data.fileio import atomic_path, check_seal, read_json_object, recover_replaced, sha256sum
from genocl_plugin.errors import GenoclInputError, input_error
from genocl_plugin.workarounds import full_float32_precision
from genocl_plugin.zoo.cards import _lineage_text
from genocl_plugin.zoo.checksums import md5sum
from genocl_plugin.zoo.names import SOURCE_NAME, validate_entry_name


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

