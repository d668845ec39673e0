"""What a stateful strategy (EWC, SI, MAS, replay) leaves in a run for the next update:
``strategy_state.safetensors`` beside the weights, with a digest of its tensors."""

from __future__ import annotations

from pathlib import Path

import torch

from genocl_plugin.errors import input_error

STATE_FILE = "strategy_state.safetensors"
STATE_DIGEST_KEY = "genocl_sha256"


def tensors_digest(state: dict) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a dict of tensors (sorted by name)."""
    import hashlib

    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_strategy_state(callbacks: list, model_dir: Path) -> Path | None:
    """Write the callbacks' ``state_dict_for_run()`` to ``model_dir/strategy_state.safetensors``.

    Keys are ``<strategy>/<key>`` (e.g. ``ewc/importance.conv.weight``) so one file holds every
    strategy's importance estimates and buffer state.
    """
    from safetensors.torch import save_file

    state = {}
    for cb in callbacks:
        if hasattr(cb, "state_dict_for_run"):
            for key, value in cb.state_dict_for_run().items():
                state[f"{cb.state_name}/{key}"] = value.detach().cpu().contiguous()
    if not state:
        return None
    # The digest of the tensors goes into the file's own metadata, so load_strategy_state can
    # refuse a damaged file instead of training on corrupted importances.
    save_file(state, str(model_dir / STATE_FILE), metadata={STATE_DIGEST_KEY: tensors_digest(state)})
    return model_dir / STATE_FILE


def load_strategy_state(parent_dir: Path | None, parent_config: dict, strategy: str, callbacks: list) -> None:
    """Give each stateful callback the state its strategy left in the parent run.

    A parent trained with a stateful strategy must still hold that strategy's state: silently
    restarting the importance estimates would change what the strategy protects.

    Raises
    ------
    GenoclInputError
        The parent's state file is missing, unreadable or lacks a chosen strategy's state.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    stateful = [cb for cb in callbacks if hasattr(cb, "load_state_from_run")]
    if parent_dir is None or not stateful:
        return
    parent_names = {n.strip() for n in str(parent_config.get("strategy", "")).split(",")}
    needed = [cb for cb in stateful if cb.state_name in parent_names and
              cb.state_name in parent_config.get("strategy_state", [cb.state_name])]
    path = Path(parent_dir) / STATE_FILE
    if not path.exists():
        if needed:
            raise input_error(path, STATE_FILE, f"missing, but the parent was trained with {needed[0].state_name}",
                              "restore the file from the parent run, or start that strategy afresh "
                              "from a model without it")
        return
    try:
        state = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            expected = (handle.metadata() or {}).get(STATE_DIGEST_KEY)
    except Exception as err:
        raise input_error(path, STATE_FILE, f"corrupted ({type(err).__name__})",
                          "restore the file from the parent run") from None
    if expected is not None and tensors_digest(state) != expected:
        raise input_error(path, STATE_DIGEST_KEY, "checksum mismatch: the strategy state was modified or damaged",
                          "restore the file from the parent run")
    for cb in stateful:
        prefix = f"{cb.state_name}/"
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not part and cb in needed:
            raise input_error(path, cb.state_name, "no state for this strategy in the parent's file",
                              "restore the file from the parent run")
        if part:
            cb.load_state_from_run(part)
