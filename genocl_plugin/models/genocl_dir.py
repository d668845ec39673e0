"""genocl model directories: ``config.json`` + ``model.safetensors``, written atomically, checked on load.

This is the format genocl writes (``save_model``) and reads back (``_load_genocl_dir``): the
config is sealed with its own checksum and records the weights' SHA-256, so an edited,
damaged or truncated directory is refused, never loaded partially. A run directory holds one
in its ``model/`` subdirectory; the bundled minis (:data:`BUNDLED_MODELS`) are such directories.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from genocl_plugin.data.fileio import (
    _umask,
    atomic_dir,
    check_seal,
    is_jsonable,
    read_json_object,
    recover_replaced,
    seal,
    sha256sum,
)
from genocl_plugin.errors import GenoclInputError, input_error
from genocl_plugin.models.lightning import GenoclLightningModel

BUNDLED_MODELS = {
    "enformer": Path(__file__).resolve().parents[1] / "bundled" / "enformer_mini",
    "procapnet": Path(__file__).resolve().parents[1] / "bundled" / "procapnet_mini",
}
FORMAT = "genocl-model"


def save_model(model: GenoclLightningModel, path: str | os.PathLike, extra: dict | None = None,
               force: bool = False) -> Path:
    """Write a genocl model directory (``config.json`` + ``model.safetensors``) atomically.

    Parameters
    ----------
    model
        The model.
    path
        Output directory.
    extra
        More JSON-serialisable metadata (metrics, lineage, ...).
    force
        Replace an existing directory.

    Returns
    -------
    Path
        The directory.
    """
    config = {
        "format": FORMAT,
        "model_params": model.model_params,
        "train_params": {k: v for k, v in model.train_params.items() if is_jsonable(v)},
        "data_params": model.data_params,
        **(extra or {}),
    }
    with atomic_dir(path, force=force) as tmp:
        save_weights(model.model, tmp / "model.safetensors")
        # The checksum lets load_model refuse a tampered or truncated weights file.
        config["weights_sha256"] = sha256sum(tmp / "model.safetensors")
        # ... and the seal lets read_config refuse an edited or damaged config.json.
        (tmp / "config.json").write_text(json.dumps(seal(config), indent=2, default=str))
    return Path(path)


def _storage_key(tensor: torch.Tensor) -> tuple:
    return (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(),
            tuple(tensor.shape), tuple(tensor.stride()))


def save_weights(net: nn.Module, path: str | os.PathLike) -> Path:
    """Write a network's state dict as safetensors, each shared (tied) tensor once.

    enformer-pytorch registers its stem and towers twice (``stem.*`` and ``_trunk.1.*`` are the
    same tensors); safetensors refuses shared tensors, so only the first name of each is
    written and :func:`load_weights` ties the aliases back.
    """
    from safetensors.torch import save_file

    state, seen = {}, set()
    for key, value in net.state_dict().items():
        ident = _storage_key(value)
        if ident in seen:
            continue
        seen.add(ident)
        state[key] = value.detach().cpu().contiguous()
    save_file(state, str(path))
    # safetensors writes its file 0600; genocl's files follow the user's umask like any other tool's
    # (0644 by default), so a lab can read a shared run or zoo entry.
    os.chmod(path, 0o666 & ~_umask())
    return Path(path)


def load_weights(net: nn.Module, path: str | os.PathLike) -> None:
    """Load :func:`save_weights` output (or any full state dict) into ``net``, strictly.

    Keys absent from the file must be aliases of keys present (tied weights); anything else
    missing or unexpected is an error, as with ``load_state_dict(strict=True)``.
    """
    from safetensors.torch import load_file

    state = load_file(str(path))
    missing, unexpected = net.load_state_dict(state, strict=False)
    own = net.state_dict()
    loaded = {_storage_key(own[k]) for k in state if k in own}
    untied = [k for k in missing if _storage_key(own[k]) not in loaded]
    if untied or unexpected:
        raise RuntimeError(f"state dict mismatch: missing {untied[:3]}, unexpected {list(unexpected)[:3]}")


def read_config(path: str | os.PathLike) -> dict:
    """The ``config.json`` of a genocl model directory, its checksum (``config_sha256``) checked.

    Raises
    ------
    GenoclInputError
        Missing, not UTF-8 JSON, not a JSON object, or edited since genocl wrote it.
    """
    file = Path(path) / "config.json"
    return check_seal(read_json_object(file, "config.json"), file)


def resolve_model_dir(spec: str | os.PathLike) -> Path | None:
    """The genocl model directory a ``--model`` value names, or None if it is another format.

    A run or model directory whose replacement was killed half-way is restored first
    (:func:`genocl_plugin.data.fileio.recover_replaced`).

    Raises
    ------
    GenoclInputError
        A genocl directory (``model.safetensors`` beside it, or a run's ``model/``) whose
        ``config.json`` is unreadable: it is reported as such, not as another format.
    """
    if str(spec) in BUNDLED_MODELS:
        return BUNDLED_MODELS[str(spec)]
    path = recover_replaced(Path(spec))
    if (path / "model" / "config.json").exists():
        read_config(path / "model")
        return path / "model"
    if (path / "config.json").is_file():
        if (path / "model.safetensors").exists():  # what genocl writes; enformer-pytorch writes .bin
            return path if read_config(path).get("format") == FORMAT else None
        try:
            data = json.loads((path / "config.json").read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        if isinstance(data, dict) and data.get("format") == FORMAT:
            return path if read_config(path) else None
    return None


def _load_genocl_dir(path: Path) -> GenoclLightningModel:
    try:
        config = read_config(path)
        expected = config.get("weights_sha256")
        if expected and sha256sum(path / "model.safetensors") != expected:
            raise input_error(
                path / "model.safetensors", "weights", "SHA-256 differs from config.json",
                "the file was modified or truncated; re-create or re-download the model",
            )
        model = GenoclLightningModel(dict(config["model_params"]), dict(config["train_params"]))
        model.data_params = config["data_params"]
        load_weights(model.model, path / "model.safetensors")
    except FileNotFoundError as err:
        raise input_error(
            path, "model", f"missing {Path(err.filename).name}", "re-run the update or publish"
        ) from None
    except GenoclInputError:
        raise
    except Exception as err:
        raise input_error(
            path, "model", f"corrupted or incompatible checkpoint ({type(err).__name__})",
            "re-create it; genocl never loads a partial model",
        ) from None
    model.genocl_config = config
    return model
