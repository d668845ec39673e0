"""Read an entry's files safely: check them against the checksums model.yaml records, then
load the model from config.json + safetensors."""

from __future__ import annotations

import os
from pathlib import Path

from genocl_plugin.data.fileio import check_seal, file_digest, read_json_object, sha256sum
from genocl_plugin.errors import input_error


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

