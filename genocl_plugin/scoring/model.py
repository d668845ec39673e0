"""Load the model named by ``--model``: a zoo entry (checksums verified) or any model file / name.

:func:`model_label` names the score columns after it.
"""

from __future__ import annotations

import os
from pathlib import Path

from genocl_plugin.errors import input_error


def load_scoring_model(spec: str | os.PathLike):
    """Load ``--model``: a zoo entry (a name under ``model_zoo/`` or a directory with
    ``model.yaml``) or any format :func:`genocl_plugin.models.load_model` reads.

    A zoo entry's checksums are verified with ``genocl_plugin.zoo.verify_entry`` before its
    weights are read; the entry's ``config.json`` + ``model.safetensors`` are a genocl model
    directory, loaded as such.

    Returns
    -------
    tuple
        ``(model, name)``; the name labels the score columns.
    """
    from genocl_plugin import models

    spec = str(spec)
    entry = _zoo_entry(spec, models.BUNDLED_MODELS)
    if entry is None:
        return models.load_model(spec), model_label(spec)
    zoo = _zoo_module()
    if zoo is not None and callable(getattr(zoo, "verify_entry", None)):
        bad = [name for name, ok in zoo.verify_entry(entry).items() if not ok]
        if bad:
            raise input_error(entry, "--model", f"checksum mismatch ({', '.join(bad)})",
                              "re-download or re-publish the zoo entry")
    parts = entry.resolve().parts
    # "model_zoo/enformer-mini/base-v1" -> "enformer-mini-base-v1" ("/" separates TSV columns)
    label = "-".join(parts[parts.index("model_zoo") + 1 :]) if "model_zoo" in parts else entry.name
    for candidate in (entry, *sorted(p for p in entry.iterdir() if p.is_dir())):
        model_dir = models.resolve_model_dir(candidate)
        if model_dir is not None:
            return models.load_model(model_dir), label
    raise input_error(entry, "--model", "zoo entry without config.json + model.safetensors",
                      "publish the entry again, or pass the model directory itself")


def model_label(spec: str | os.PathLike) -> str:
    """Name for column headers: the bundled name, or the run / model directory / file name."""
    path = Path(spec)
    if path.name == "model" and path.parent.name:
        return path.parent.name
    return path.name[: -len(path.suffix)] if path.suffix in (".ckpt", ".pt", ".pth", ".torch") else path.name


def _zoo_entry(spec: str, bundled: dict) -> Path | None:
    """The zoo entry directory ``spec`` names, or None when it is not a zoo entry."""
    path = Path(spec)
    if (path / "model.yaml").is_file():
        return path
    if spec in bundled or path.exists():
        return None
    for root in (Path.cwd() / "model_zoo", Path(__file__).resolve().parents[2] / "model_zoo"):
        if (root / spec / "model.yaml").is_file():
            return root / spec
    return None


def _zoo_module():
    try:
        from genocl_plugin import zoo
    except ImportError:
        return None
    return zoo
