"""Names in a zoo: entry names and their versions, the Kipoi source name, the per-entry module."""

from __future__ import annotations

import os
import re
from pathlib import Path

from genocl_plugin.errors import input_error

SOURCE_NAME = "genocl"  # the Kipoi source name ``genocl zoo register`` adds to ~/.kipoi/config.yaml
ENTRY_MODULE = "genocl_kipoi"  # the per-entry module Kipoi imports ``defined_as`` from
_NAME_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_VERSION = re.compile(r"^(?P<stem>.+)-v(?P<version>[0-9]+)$")


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

