"""Build and load base models: Enformer through gReLU, ProCapNet through bpnet-lite.

Every model is a :class:`GenoclLightningModel` (a thin subclass of gReLU's
``LightningModel``) whose ``forward(x, logits=True)`` returns **log predicted coverage** of
shape (batch, tracks, length) and whose activation is ``exp``. One convention for all
architectures lets the perturbation objectives, replay and variant scoring treat them alike.

Weight formats read from local files (no hub downloads):

- a genocl model directory (``config.json`` + ``model.safetensors``), what genocl writes;
- a genocl run directory (its ``model/`` subdirectory);
- a gReLU ``.ckpt`` (a pickle: load only files you trust);
- an enformer-pytorch ``from_pretrained`` directory (``config.json`` + ``pytorch_model.bin``);
- a borzoi-pytorch ``from_pretrained`` directory (``config.json`` with ``model_type: borzoi``;
  needs the optional dependency, ``pip install genocl[borzoi]``);
- a bpnet-lite saved model (``torch.save(model)``, loaded with an allow-list, no arbitrary pickle)
  or a ProCapNet fold state dict (``.pt`` / ``.torch``), architecture inferred from the shapes;
- a Puffin state dict (jzhoulab/puffin ``resources/puffin.pth``), recognised from its keys.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import torch
from grelu.lightning import LightningModel
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
from genocl_plugin.models.puffin import PuffinTracks, is_puffin_state
from genocl_plugin.workarounds import patch_enformer_attention_pool

patch_enformer_attention_pool()  # upstream CPU slowness; see genocl_plugin/workarounds.py

BUNDLED_MODELS = {
    "enformer": Path(__file__).resolve().parents[1] / "bundled" / "enformer_mini",
    "procapnet": Path(__file__).resolve().parents[1] / "bundled" / "procapnet_mini",
}
FORMAT = "genocl-model"

# enformer-mini: gReLU EnformerModel at 32-bp bins (n_conv=5), matching the bundled targets.
ENFORMER_MINI = {
    "model_type": "EnformerModel", "n_tasks": 74, "n_conv": 5, "channels": 384,
    "n_transformers": 1, "n_heads": 8, "key_len": 32, "crop_len": 0,
    "final_act_func": None, "final_pool_func": None,
}
ENFORMER_MINI_SEQ_LEN = 2_048
# procapnet-mini: ProCapNet's layout (BPNet, 2 strands, no control tracks) with 64 filters.
PROCAPNET_MINI = {
    "model_type": "ProCapNetBPNet", "n_filters": 64, "n_layers": 8, "n_outputs": 2,
    "n_control_tracks": 0, "trimming": 576,
}
PROCAPNET_MINI_SEQ_LEN = 2_176  # 68 bins of 32 bp in, 1,024 bp (32 bins) out


class ProCapNetBPNet(nn.Module):
    """bpnet-lite ``BPNet`` exposed as log predicted coverage (batch, strands, length).

    ProCapNet predicts a profile (one softmax over both strands) and the log total count;
    ``log_softmax(profile) + log_counts`` is the log of the predicted coverage, so the profile
    and the counts are both recoverable (``logsumexp`` over strands and positions is the log
    count). No control tracks, as in ProCapNet.

    Parameters
    ----------
    n_filters, n_layers, n_outputs, n_control_tracks, trimming
        Passed to ``bpnetlite.bpnet.BPNet``.
    """

    def __init__(self, n_filters: int = 512, n_layers: int = 8, n_outputs: int = 2,
                 n_control_tracks: int = 0, trimming: int | None = None) -> None:
        super().__init__()
        from bpnetlite.bpnet import BPNet

        self.bpnet = BPNet(n_filters=n_filters, n_layers=n_layers, n_outputs=n_outputs,
                           n_control_tracks=n_control_tracks, trimming=trimming, verbose=False)
        # gReLU's LightningModel reads model.head.n_tasks for its metrics.
        self.head = nn.Module()
        self.head.n_tasks = n_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        profile, log_counts = self.bpnet(x)
        shape = profile.shape
        log_p = torch.log_softmax(profile.reshape(shape[0], -1), dim=-1).reshape(shape)
        return log_p + log_counts.reshape(-1, 1, 1)


class EnformerPytorchTracks(nn.Module):
    """An enformer-pytorch ``Enformer`` as log predicted coverage (batch, tracks, bins).

    Parameters
    ----------
    hparams
        ``Enformer.from_hparams`` keyword arguments (its ``config.json``).
    head
        Which output head to expose (``human`` or ``mouse``).
    """

    def __init__(self, hparams: dict, head: str = "human") -> None:
        super().__init__()
        from enformer_pytorch import Enformer

        self.enformer = Enformer.from_hparams(**hparams)
        self.head_name = head
        self.head = nn.Module()
        self.head.n_tasks = dict(self.enformer.config.output_heads)[head]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # enformer-pytorch takes (batch, length, 4) and returns softplus rates (batch, bins, tracks)
        out = self.enformer(x.transpose(1, 2), head=self.head_name)
        return torch.log(out.clamp_min(1e-8)).transpose(1, 2)


class BorzoiPytorchTracks(nn.Module):
    """A borzoi-pytorch ``Borzoi`` as log predicted coverage (batch, tracks, bins).

    borzoi-pytorch is an optional dependency (``pip install genocl[borzoi]``); it is imported
    only when a Borzoi is built.

    Parameters
    ----------
    config
        ``BorzoiConfig`` keyword arguments (the architecture part of its ``config.json``).
    head
        Which output head to expose (``human``, 7,611 tracks, or ``mouse``, 2,608).
    """

    def __init__(self, config: dict, head: str = "human") -> None:
        super().__init__()
        borzoi_cls, config_cls = import_borzoi_pytorch()
        self.borzoi = borzoi_cls(config_cls(**config))
        self.head_name = head
        self.head = nn.Module()
        self.head.n_tasks = int(getattr(self.borzoi, f"{head}_head").out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # borzoi-pytorch takes (batch, 4, length) and returns softplus rates (batch, tracks, bins).
        out = self.borzoi(x, is_human=self.head_name == "human")
        return torch.log(out.clamp_min(1e-8))


class GenoclLightningModel(LightningModel):
    """gReLU's ``LightningModel`` with extra architectures and the ProCapNet loss.

    gReLU builds models only from ``grelu.model.models``; ``build_model`` adds
    ``ProCapNetBPNet`` (bpnet-lite), ``EnformerPytorchTracks`` (enformer-pytorch),
    ``BorzoiPytorchTracks`` (borzoi-pytorch, optional) and ``PuffinTracks`` (Puffin).
    ``train_params["loss"] = "procapnet"`` is ProCapNet's multinomial profile NLL plus a
    weighted log-count MSE, computed with bpnet-lite's own loss functions.
    """

    def build_model(self) -> None:
        # Architecture added by strategies (screen heads, LoRA adapters) is recorded in
        # model_params but is not a constructor argument of the base network.
        extras = {k: self.model_params.pop(k) for k in STRATEGY_ARCH_KEYS if k in self.model_params}
        try:
            params = {k: v for k, v in self.model_params.items() if k != "model_type"}
            kind = self.model_params["model_type"]
            if kind == "ProCapNetBPNet":
                self.model = ProCapNetBPNet(**params)
            elif kind == "EnformerPytorchTracks":
                self.model = EnformerPytorchTracks(**params)
            elif kind == "BorzoiPytorchTracks":
                self.model = BorzoiPytorchTracks(**params)
            elif kind == "PuffinTracks":
                self.model = PuffinTracks(**params)
            else:
                super().build_model()
        finally:
            self.model_params.update(extras)
        _rebuild_strategy_architecture(self.model, extras)

    def initialize_loss(self) -> None:
        if self.train_params["loss"] == "procapnet":
            self.loss = ProCapNetLoss(self.train_params.get("count_loss_weight", 100.0))
        else:
            super().initialize_loss()

    def initialize_activation(self) -> None:
        if self.train_params["loss"] == "procapnet":
            self.activation = torch.exp
        else:
            super().initialize_activation()

    def configure_optimizers(self):
        """gReLU's optimiser; with ``train_params["head_lr"]`` the new multihead heads get their own
        learning rate (they start from random weights while the trunk is already trained)."""
        head_lr = self.train_params.get("head_lr")
        if not head_lr:
            return super().configure_optimizers()
        from genocl_plugin.strategies.freeze import SCREEN_HEADS

        heads, rest = [], []
        for name, param in self.model.named_parameters():
            (heads if name.startswith(SCREEN_HEADS + ".") else rest).append(param)
        groups = [{"params": rest, "lr": self.train_params["lr"]}, {"params": heads, "lr": float(head_lr)}]
        if self.train_params.get("optimizer", "adam") == "sgd":
            return torch.optim.SGD(groups, lr=self.train_params["lr"], momentum=0.9)
        return torch.optim.Adam(groups, lr=self.train_params["lr"])

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        """gReLU's step for ``(x, y)`` batches; the perturbation objective for dict batches.

        gReLU's ``training_step`` has no hook for extra loss terms, so this is where
        strategy callbacks add theirs: every callback with a ``loss_term(pl_module, batch)``
        method contributes to the loss (EWC penalties, replay, distillation, ...).
        """
        from genocl_plugin.objectives import batch_loss, batch_size

        if isinstance(batch, dict):
            loss = batch_loss(self, batch)  # effect MSE, or the personal-genome loss (batch["kind"])
        else:
            x, y = batch
            loss = self.loss(self.forward(x, logits=True), y)
        self.log("task_loss", loss.detach(), on_step=False, on_epoch=True, batch_size=batch_size(batch))
        trainer = getattr(self, "_trainer", None)
        for callback in (trainer.callbacks if trainer is not None else []):
            term = getattr(callback, "loss_term", None)
            if term is not None:
                extra = term(self, batch)
                if extra is not None:
                    loss = loss + extra
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=batch_size(batch))
        return loss

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # A screen compares two predictions: the whole step, strategy terms (replay,
        # distillation) included, runs with dropout off, so both sides see one network and
        # gradient checkpointing recomputes each block in the mode its forward ran in
        # (objectives.disable_dropout says why). Track batches keep their dropout.
        from genocl_plugin.objectives import disable_dropout, is_comparison

        self._dropout_disabled = disable_dropout(self) if is_comparison(batch) else []

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        for layer in getattr(self, "_dropout_disabled", []):  # after backward and the optimiser step
            layer.train()
        self._dropout_disabled = []

    @property
    def seq_len(self) -> int:
        """Input length the model was trained on (bp)."""
        return int(self.data_params.get("train", {}).get("seq_len", ENFORMER_MINI_SEQ_LEN))

    @property
    def bin_size(self) -> int:
        """bp per output position."""
        return int(self.data_params.get("train", {}).get("bin_size") or 1)

    @property
    def task_names(self) -> list[str]:
        """Names of the output tracks."""
        names = self.data_params.get("tasks", {}).get("name")
        return list(names) if names else [f"track_{i}" for i in range(self.model.head.n_tasks)]

    @property
    def screen_tracks(self) -> list[int]:
        """Tracks of the multi-head screen head the perturbation objective reads (else [])."""
        heads = {h["name"]: h for h in self.model_params.get("genocl_heads") or []}
        head = heads.get(self.model_params.get("genocl_readout"))
        if head is None:
            return []
        names = self.task_names
        return [names.index(n) for n in head["task_names"] if n in names]

    def output_offset(self) -> int:
        """bp between the input start and the first output position (``seq_len`` inputs)."""
        n_out = self.output_length(self.seq_len)
        return (self.seq_len - n_out * self.bin_size) // 2

    def output_length(self, seq_len: int) -> int:
        """Number of output positions for an input of ``seq_len`` bp."""
        if self.model_params["model_type"] == "ProCapNetBPNet":
            return seq_len - 2 * self.model.bpnet.trimming
        if self.model_params["model_type"] == "EnformerPytorchTracks":
            # enformer-pytorch centre-crops its output to target_length bins (-1: no crop).
            target = int(self.model_params["hparams"].get("target_length", 896))
            return target if target > 0 else seq_len // self.bin_size
        if self.model_params["model_type"] == "BorzoiPytorchTracks":
            return borzoi_pytorch_output_bins(self.model_params["config"])
        if self.model_params["model_type"] == "PuffinTracks":
            from genocl_plugin.models.puffin import TRIM

            return seq_len - 2 * TRIM
        crop = int(self.model_params.get("crop_len", 0))
        return seq_len // self.bin_size - 2 * crop


STRATEGY_ARCH_KEYS = ("genocl_heads", "genocl_readout", "lora")


def _rebuild_strategy_architecture(net: nn.Module, extras: dict) -> None:
    """Re-create screen heads and LoRA adapters recorded by a strategy (see strategies/)."""
    if extras.get("genocl_heads"):
        from genocl_plugin.strategies.multihead import attach_heads

        attach_heads(net, extras["genocl_heads"])
    if extras.get("lora"):
        from genocl_plugin.strategies.lora import apply_lora

        apply_lora(net, extras["lora"])
        # peft freezes everything but the adapters; which parameters train is decided by
        # the next update's strategies, not by loading.
        net.requires_grad_(True)


class ProCapNetLoss(nn.Module):
    """ProCapNet / BPNet loss on log predicted coverage (bpnet-lite's MNLL + log1p MSE).

    Parameters
    ----------
    count_loss_weight
        Weight of the log-count MSE (ProCapNet uses 100).
    """

    def __init__(self, count_loss_weight: float = 100.0) -> None:
        super().__init__()
        self.count_loss_weight = count_loss_weight

    def forward(self, log_coverage: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from bpnetlite.losses import MNLLLoss, log1pMSELoss

        flat = log_coverage.reshape(log_coverage.shape[0], -1)
        y = target.reshape(target.shape[0], -1)
        log_counts = torch.logsumexp(flat, dim=-1, keepdim=True)
        profile = MNLLLoss(flat - log_counts, y).mean()
        counts = log1pMSELoss(log_counts, y.sum(dim=-1, keepdim=True)).mean()
        return profile + self.count_loss_weight * counts


def build_model(arch: str, task_names: list[str] | None = None, seq_len: int | None = None,
                model_params: dict | None = None, train_params: dict | None = None
                ) -> GenoclLightningModel:
    """Build an untrained model.

    Parameters
    ----------
    arch
        ``enformer`` (gReLU EnformerModel), ``procapnet`` (bpnet-lite BPNet) or ``puffin``
        (Puffin's architecture, randomly initialised).
    task_names
        Output track names.
    seq_len
        Input length in bp.
    model_params
        Overrides of the architecture's mini defaults.
    train_params
        Overrides of the training defaults (lr, loss, ...).

    Returns
    -------
    GenoclLightningModel
    """
    if arch == "enformer":
        params = {**ENFORMER_MINI, **(model_params or {})}
        train = {"task": "regression", "loss": "poisson", "lr": 5e-4, "optimizer": "adam"}
        seq_len, bin_size = seq_len or ENFORMER_MINI_SEQ_LEN, 2 ** params["n_conv"]
    elif arch == "procapnet":
        params = {**PROCAPNET_MINI, **(model_params or {})}
        train = {"task": "regression", "loss": "procapnet", "lr": 5e-4, "optimizer": "adam",
                 "count_loss_weight": 100.0}
        seq_len, bin_size = seq_len or PROCAPNET_MINI_SEQ_LEN, 1
    elif arch == "puffin":
        from genocl_plugin.models.puffin import DEFAULT_SEQ_LEN, TRACK_NAMES

        params = {"model_type": "PuffinTracks", **(model_params or {})}
        train = {"task": "regression", "loss": "poisson", "lr": 5e-4, "optimizer": "adam"}
        seq_len, bin_size = seq_len or DEFAULT_SEQ_LEN, 1
        task_names = task_names or TRACK_NAMES
    else:
        raise input_error(
            "--model", "architecture", f"unknown {arch!r}", "use enformer, procapnet or puffin"
        )
    train.update(train_params or {})
    model = GenoclLightningModel(dict(params), dict(train))
    n_tasks = model.model.head.n_tasks
    model.data_params = {
        "tasks": {"name": list(task_names or [f"track_{i}" for i in range(n_tasks)])},
        "train": {"seq_len": int(seq_len), "bin_size": int(bin_size)},
        "arch": arch,
    }
    return model


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


def load_model(spec: str | os.PathLike) -> GenoclLightningModel:
    """Load a model from a bundled name or a local file in any supported format.

    Parameters
    ----------
    spec
        ``enformer`` / ``procapnet`` (the bundled minis), a genocl model or run directory,
        a gReLU ``.ckpt``, an enformer-pytorch or borzoi-pytorch ``from_pretrained``
        directory, a bpnet-lite / ProCapNet ``.pt`` / ``.torch`` file or a Puffin ``.pth``.

    Returns
    -------
    GenoclLightningModel
        In eval mode.

    Raises
    ------
    GenoclInputError
        Unknown name, missing file, or a file that is not a model of a supported format.
    """
    model_dir = resolve_model_dir(spec)
    path = Path(spec)
    if model_dir is not None:
        model = _load_genocl_dir(model_dir)
    elif not path.exists():
        raise input_error(
            spec, "--model", "not a bundled model name or an existing path",
            "use enformer, procapnet, a run directory or a checkpoint file",
        )
    elif path.is_dir() and is_borzoi_pytorch_dir(path):
        model = load_borzoi_pytorch_dir(path)
    elif path.is_dir() and (path / "config.json").exists():
        model = load_enformer_pytorch_dir(path)
    elif path.suffix == ".ckpt":
        model = load_grelu_checkpoint(path)
    elif path.suffix in (".pt", ".pth", ".torch"):
        model = load_torch_file(path)
    else:
        raise input_error(
            spec, "--model", "unrecognised model format",
            "pass a genocl model dir, a gReLU .ckpt, an enformer-pytorch or borzoi-pytorch dir, "
            "a bpnet-lite .torch/.pt or a Puffin .pth",
        )
    model.eval()
    return model


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


# What gReLU / Lightning checkpoints really pickle besides tensors (measured on checkpoints
# written by gReLU 1.1 ``train_on_dataset``: ``performance`` holds numpy arrays; older gReLU
# versions and hand-made zoo files keep ``data_params["tasks"]`` / intervals as pandas objects).
_SAFE_GLOBAL_NAMES = (
    "numpy.ndarray", "numpy.dtype", "numpy._core.multiarray._reconstruct",
    "numpy._core.multiarray.scalar", "numpy.core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar", "builtins.slice",
    "pandas.core.frame.DataFrame", "pandas.core.series.Series",
    "pandas.core.indexes.base.Index", "pandas.core.indexes.base._new_Index",
    "pandas.core.indexes.range.RangeIndex", "pandas.core.internals.managers.BlockManager",
    "pandas.core.internals.managers.SingleBlockManager", "pandas._libs.internals._unpickle_block",
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
)
_TRUST_CHECKPOINTS = False
_ENFORMER_HEAD: str | None = None


@contextlib.contextmanager
def enformer_head(head: str | None):
    """Within the block, enformer-pytorch / borzoi-pytorch directories load with this output head (``--head``)."""
    global _ENFORMER_HEAD
    previous, _ENFORMER_HEAD = _ENFORMER_HEAD, head
    try:
        yield
    finally:
        _ENFORMER_HEAD = previous


@contextlib.contextmanager
def trusted_checkpoints(enabled: bool = True):
    """Within the block, pickled checkpoints load with ``weights_only=False`` (``--trust-checkpoint``).

    Off by default: a pickle can run any code when it is loaded.
    """
    global _TRUST_CHECKPOINTS
    previous, _TRUST_CHECKPOINTS = _TRUST_CHECKPOINTS, bool(enabled)
    try:
        yield
    finally:
        _TRUST_CHECKPOINTS = previous


def checkpoint_safe_globals() -> list:
    """The allow-list for ``torch.load(weights_only=True)``: numpy/pandas/Lightning data types only.

    Only classes that rebuild plain data are listed (arrays, dtypes, data frames, dicts);
    nothing that calls a function named by the file.
    """
    import importlib

    import numpy as np

    allowed = [type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGOUSV"]
    for name in _SAFE_GLOBAL_NAMES:
        module, _, attr = name.rpartition(".")
        try:
            allowed.append(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError):  # other numpy / pandas / Lightning versions
            continue
    return allowed


def load_pickled_checkpoint(path: str | os.PathLike, extra_globals: list | None = None,
                            trust: bool | None = None, field: str = "checkpoint",
                            unreadable: str = "not a readable torch checkpoint",
                            fix: str = "pass the file as it was written by torch.save / Lightning"):
    """``torch.load`` a pickled checkpoint without running code from it.

    Parameters
    ----------
    path
        The file.
    extra_globals
        Classes allowed besides :func:`checkpoint_safe_globals` (e.g. bpnet-lite's ``BPNet``).
    trust
        Load with ``weights_only=False`` (legacy files from a trusted source); default: the
        :func:`trusted_checkpoints` setting (off).
    field, unreadable, fix
        The error message for a file that is not a torch pickle at all.

    Raises
    ------
    GenoclInputError
        The file names a class or function outside the allow-list (nothing of it was run).
    """
    trust = _TRUST_CHECKPOINTS if trust is None else trust
    if trust:
        return torch.load(path, map_location="cpu", weights_only=False)
    allowed = checkpoint_safe_globals() + list(extra_globals or [])
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        error = err
    # weights_only refused before executing anything; name what it refused, if anything.
    try:
        names = {f"{g.__module__}.{g.__qualname__}" for g in allowed if hasattr(g, "__qualname__")}
        unsafe = sorted(g for g in torch.serialization.get_unsafe_globals_in_checkpoint(path) if g not in names)
    except Exception:
        unsafe = []
    if not unsafe:
        raise input_error(path, field, f"{unreadable} ({type(error).__name__})", fix) from None
    raise input_error(
        path, field, f"refused to unpickle: it names {', '.join(unsafe[:3])}, which could run code "
        "when loaded", "if you trust where the file comes from, pass --trust-checkpoint",
    )


def load_grelu_checkpoint(path: str | os.PathLike, trust: bool | None = None) -> GenoclLightningModel:
    """Load a gReLU ``LightningModel`` checkpoint (``.ckpt``) without running pickled code.

    gReLU checkpoints are Lightning pickles holding numpy arrays (``performance``) and, in
    some files, pandas tables; they are read with ``torch.load(weights_only=True)`` and the
    allow-list of :func:`checkpoint_safe_globals`. ``trust=True`` (``--trust-checkpoint``)
    reads legacy files holding other objects as full pickles.
    """
    ckpt = load_pickled_checkpoint(path, trust=trust, unreadable="not a loadable gReLU checkpoint",
                                   fix="pass a .ckpt written by grelu's LightningModel")
    try:
        hparams = ckpt["hyper_parameters"]
        model = GenoclLightningModel(dict(hparams["model_params"]),
                                     dict(hparams.get("train_params", {})))
        state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items()
                 if k.startswith("model.")}
        model.model.load_state_dict(state)
    except Exception as err:
        raise input_error(
            path, "checkpoint", f"not a loadable gReLU checkpoint ({type(err).__name__})",
            "pass a .ckpt written by grelu's LightningModel",
        ) from None
    data_params = dict(ckpt.get("data_params") or {})
    model.data_params = grelu_data_params(data_params, model.model_params)
    return model


def grelu_data_params(data_params: dict, model_params: dict) -> dict:
    """gReLU's ``data_params`` as genocl reads them: task names, train seq_len and bin size.

    gReLU stores ``tasks`` as a dict of lists (``DataFrame.to_dict(orient="list")``); older
    files hold the DataFrame itself. The bin size is None for unbinned labels; the trunk's
    own resolution (2 ** n_conv for Enformer, 32 bp for Borzoi) is used then.
    """
    import pandas as pd

    data_params = dict(data_params)
    tasks = data_params.get("tasks")
    if isinstance(tasks, pd.DataFrame):
        tasks = tasks.reset_index().to_dict(orient="list") if "name" not in tasks else tasks.to_dict(orient="list")
    tasks = dict(tasks or {})
    data_params["tasks"] = {"name": [str(n) for n in tasks.get("name", [])]} if tasks else {}
    train = dict(data_params.get("train") or {})
    kind = str(model_params.get("model_type", ""))
    if train.get("bin_size") is None:
        if "n_conv" in model_params:
            train["bin_size"] = 2 ** int(model_params["n_conv"])
        elif "Borzoi" in kind:
            train["bin_size"] = 32
    if train.get("seq_len") is None and "Borzoi" in kind:
        train["seq_len"] = 524_288
    data_params["train"] = train
    data_params["arch"] = ("enformer" if "Enformer" in kind else "borzoi" if "Borzoi" in kind else "grelu")
    return data_params


def load_enformer_pytorch_dir(path: str | os.PathLike, head: str | None = None,
                              seq_len: int | None = None) -> GenoclLightningModel:
    """Load an enformer-pytorch ``save_pretrained`` / ``from_pretrained`` directory offline.

    ``head``: ``human`` (5,313 tracks) or ``mouse`` (1,643); default the :func:`enformer_head`
    setting (``--head``), else ``human``.
    """
    from enformer_pytorch import Enformer

    config = Path(path) / "config.json"
    try:
        data = json.loads(config.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise input_error(config, "config.json", f"not valid UTF-8 JSON ({type(err).__name__})",
                          "pass a directory written by Enformer.save_pretrained") from None
    if not isinstance(data, dict):
        raise input_error(config, "config.json", f"is a JSON {type(data).__name__}, not an object",
                          "pass a directory written by Enformer.save_pretrained")
    weights = [Path(path) / n for n in ("pytorch_model.bin", "model.safetensors") if (Path(path) / n).exists()]
    try:
        enformer = Enformer.from_pretrained(str(path), local_files_only=True)
    except Exception as err:
        # The config parsed, so the problem is the weights file (or a config of another model).
        blamed = weights[0] if weights else Path(path)
        field = "weights" if weights else "pytorch_model.bin"
        raise input_error(
            blamed, field, f"not loadable as enformer-pytorch weights ({type(err).__name__})",
            "pass a directory written by Enformer.save_pretrained",
        ) from None
    head = head or _ENFORMER_HEAD or "human"
    heads = dict(enformer.config.output_heads)
    if head not in heads:
        raise input_error(path, "--head", f"no output head {head!r}", f"use one of {', '.join(heads)}")
    hparams = enformer.config.to_dict()
    hparams = {k: hparams[k] for k in (
        "dim", "depth", "heads", "output_heads", "target_length", "attn_dim_key", "dropout_rate",
        "attn_dropout", "pos_dropout", "use_checkpointing", "use_convnext", "num_downsamples",
        "dim_divisible_by", "use_tf_gamma") if k in hparams}
    model = GenoclLightningModel(
        {"model_type": "EnformerPytorchTracks", "hparams": hparams, "head": head},
        {"task": "regression", "loss": "poisson"},
    )
    model.model.enformer.load_state_dict(enformer.state_dict())
    n_down = int(hparams.get("num_downsamples", 7))
    target = int(hparams.get("target_length", 896))
    if seq_len is None:
        # Enformer's own input (196,608 bp = 1,536 bins, cropped to 896); otherwise twice the
        # target in bins, so the crop is symmetric ((bins - target) even).
        if (target == 896 and n_down == 7) or target <= 0:
            seq_len = 196_608
        else:
            seq_len = (2 * target + target % 2) * 2 ** n_down
    model.data_params = {
        "tasks": {"name": [f"{head}_{i}" for i in range(model.model.head.n_tasks)]},
        "train": {"seq_len": int(seq_len), "bin_size": 2 ** n_down},
        "arch": "enformer",
    }
    return model


# --------------------------------------------------------------------------- borzoi-pytorch
# borzoi-pytorch (johahi/borzoi-pytorch) is an optional dependency: its 0.5 releases need
# transformers>=4.57.6, which enformer-pytorch 0.8.12 refuses (it pins transformers==4.56.2), so
# the `borzoi` extra also caps enformer-pytorch (setup.cfg).
BORZOI_EXTRA = "pip install 'genocl[borzoi]'"
BORZOI_PYTORCH_SEQ_LEN = 524_288  # Borzoi's input: 16,384 bins of 32 bp, centre 6,144 predicted
BORZOI_PYTORCH_BIN_SIZE = 32
# The architecture part of a BorzoiConfig (the rest of config.json is transformers bookkeeping).
_BORZOI_CONFIG_KEYS = ("dim", "depth", "heads", "attn_dim_key", "attn_dim_value", "dropout_rate",
                       "attn_dropout", "pos_dropout", "return_center_bins_only", "bins_to_return",
                       "enable_human_head", "enable_mouse_head", "flashed")


def import_borzoi_pytorch(source: object = "--model") -> tuple[type, type]:
    """borzoi-pytorch's ``Borzoi`` and ``BorzoiConfig``, imported on first use.

    Raises
    ------
    GenoclInputError
        borzoi-pytorch is not installed (or cannot be imported): one line naming the extra.
    """
    try:
        from borzoi_pytorch.config_borzoi import BorzoiConfig
        from borzoi_pytorch.pytorch_borzoi_model import Borzoi
    except ImportError as err:
        missing = str(getattr(err, "name", None) or "").split(".")[0] == "borzoi_pytorch"
        problem = ("not installed (an optional dependency of genocl)" if missing else
                   f"cannot be imported ({' '.join(str(err).split())[:200]})")
        raise input_error(source, "borzoi-pytorch", problem, BORZOI_EXTRA) from None
    return Borzoi, BorzoiConfig


def is_borzoi_pytorch_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a borzoi-pytorch ``save_pretrained`` directory (``model_type: borzoi``)."""
    config = Path(path) / "config.json"
    try:
        data = json.loads(config.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and data.get("model_type") == "borzoi" and data.get("format") != FORMAT


def borzoi_pytorch_output_bins(config: dict) -> int:
    """Output bins of a borzoi-pytorch model: its centre crop (6,144 of the 16,384 32-bp bins)."""
    if config.get("return_center_bins_only", True):
        return int(config.get("bins_to_return", 6144))
    return 16384 - 32  # borzoi-pytorch's crop when return_center_bins_only is False


def borzoi_pytorch_track_names(head: str, n_tracks: int) -> list[str]:
    """Track names of a borzoi-pytorch head: ``description [identifier]`` from the ``targets.txt``
    borzoi-pytorch ships for the human head (Borzoi's 7,611 tracks), else ``<head>_<i>``."""
    import borzoi_pytorch
    import pandas as pd

    targets = Path(borzoi_pytorch.__file__).parent / "precomputed" / "targets.txt"
    if head == "human" and targets.exists():
        table = pd.read_csv(targets, sep="\t", index_col=0)
        if len(table) == n_tracks and {"identifier", "description"} <= set(table.columns):
            return [f"{d} [{i}]" for d, i in zip(table["description"].astype(str),
                                                 table["identifier"].astype(str), strict=True)]
    return [f"{head}_{i}" for i in range(n_tracks)]


def load_borzoi_pytorch_dir(path: str | os.PathLike, head: str | None = None,
                            seq_len: int | None = None) -> GenoclLightningModel:
    """Load a borzoi-pytorch ``save_pretrained`` / ``from_pretrained`` directory offline.

    Parameters
    ----------
    path
        Directory with ``config.json`` (``model_type: borzoi``) and ``model.safetensors`` or
        ``pytorch_model.bin`` (as the borzoi-replicate weights on the Hugging Face Hub).
    head
        ``human`` (7,611 tracks) or ``mouse`` (2,608; when the config enables it); default the
        :func:`enformer_head` setting (``--head``), else ``human``.
    seq_len
        Input length; default Borzoi's 524,288 bp.

    Raises
    ------
    GenoclInputError
        borzoi-pytorch missing, unloadable weights, a Flashzoi model without flash-attn, or
        an output head the model does not have.
    """
    borzoi_cls, _ = import_borzoi_pytorch(path)
    config = read_json_object(Path(path) / "config.json", "config.json")
    if config.get("flashed"):
        try:
            import flash_attn  # noqa: F401
        except ImportError:
            raise input_error(Path(path) / "config.json", "flashed", "Flashzoi weights need flash-attn (a CUDA GPU)",
                              "install flash-attn on a GPU machine, or use a borzoi-replicate directory") from None
    weights = [Path(path) / n for n in ("model.safetensors", "pytorch_model.bin") if (Path(path) / n).exists()]
    if not weights:
        raise input_error(path, "model.safetensors", "missing (no weights file beside config.json)",
                          "pass a directory written by Borzoi.save_pretrained")
    try:
        # transformers reads pytorch_model.bin with torch.load(weights_only=True): no pickled code runs.
        borzoi, info = borzoi_cls.from_pretrained(str(path), local_files_only=True, output_loading_info=True)
    except Exception as err:
        raise input_error(
            weights[0], "weights", f"not loadable as borzoi-pytorch weights ({type(err).__name__})",
            "pass a directory written by Borzoi.save_pretrained",
        ) from None
    # transformers only warns about weights absent from the file (and initialises them at
    # random); genocl refuses a partial model.
    absent = list(info.get("missing_keys") or []) + [str(k[0]) for k in info.get("mismatched_keys") or []]
    if absent:
        raise input_error(weights[0], "weights", f"{len(absent)} tensors missing or of the wrong shape "
                          f"(e.g. {absent[0]})", "pass the weights written with this config.json")
    heads = [h for h in ("human", "mouse") if isinstance(getattr(borzoi, f"{h}_head", None), nn.Module)]
    head = head or _ENFORMER_HEAD or "human"
    if head not in heads:
        raise input_error(path, "--head", f"no output head {head!r}", f"use one of {', '.join(heads)}")
    arch = borzoi.config.to_dict()
    arch = {k: arch[k] for k in _BORZOI_CONFIG_KEYS if k in arch}
    model = GenoclLightningModel({"model_type": "BorzoiPytorchTracks", "config": arch, "head": head},
                                 {"task": "regression", "loss": "poisson"})
    model.model.borzoi.load_state_dict(borzoi.state_dict())
    n_tasks = model.model.head.n_tasks
    model.data_params = {
        "tasks": {"name": borzoi_pytorch_track_names(head, n_tasks)},
        "train": {"seq_len": int(seq_len or BORZOI_PYTORCH_SEQ_LEN), "bin_size": BORZOI_PYTORCH_BIN_SIZE},
        "arch": "borzoi",
    }
    return model


def load_torch_file(path: str | os.PathLike, seq_len: int | None = None,
                    trust: bool | None = None) -> GenoclLightningModel:
    """Load a ``torch.save`` file: a whole bpnet-lite ``BPNet``, a BPNet / ProCapNet state dict or Puffin's.

    The file is read once with ``weights_only=True`` and the allow-list of :func:`bpnet_safe_globals`
    (no pickled code runs); what it holds decides the format.
    """
    obj = _load_bpnet_pickle(path, trust)
    if is_puffin_state(obj):
        return load_puffin_state(obj, path, seq_len)
    return load_bpnet_file(path, seq_len=seq_len, trust=trust, obj=obj)


def load_puffin_state(state: dict, path: str | os.PathLike = "puffin.pth",
                      seq_len: int | None = None) -> GenoclLightningModel:
    """A GenoclLightningModel from Puffin's state dict (``resources/puffin.pth`` of jzhoulab/puffin).

    Raises
    ------
    GenoclInputError
        A tensor of the wrong shape or a key Puffin does not have.
    """
    from genocl_plugin.models.puffin import DEFAULT_SEQ_LEN, STATE_KEYS, TRACK_NAMES, UNUSED_KEYS

    extra = sorted(str(k) for k in state if str(k) not in STATE_KEYS | UNUSED_KEYS)
    if extra:
        raise input_error(path, "weights", f"not Puffin's state dict (unexpected key {extra[0]})",
                          "pass resources/puffin.pth of jzhoulab/puffin as it was released")
    model = GenoclLightningModel({"model_type": "PuffinTracks"}, {"task": "regression", "loss": "poisson"})
    try:
        model.model.load_puffin_state(state)
    except (RuntimeError, KeyError) as err:
        text = " ".join(str(err).split())
        first = text.split(":", 1)[1].strip() if text.startswith("Error(s)") else text
        raise input_error(path, "weights", f"state dict does not fit Puffin ({first.split('. ')[0][:200]})",
                          "pass resources/puffin.pth of jzhoulab/puffin as it was released") from None
    model.data_params = {"tasks": {"name": list(TRACK_NAMES)},
                         "train": {"seq_len": int(seq_len or DEFAULT_SEQ_LEN), "bin_size": 1},
                         "arch": "puffin"}
    return model


def bpnet_safe_globals() -> list:
    """What a whole bpnet-lite model pickles besides tensors: its module classes and numpy scalars.

    ``BPNet.fit`` saves the model with its training log (numpy scalars). A file written under
    numpy 1.x names ``numpy.core.multiarray.scalar``, which numpy 2 keeps only as an alias of
    ``numpy._core.multiarray.scalar``; torch matches allowed globals by the name in the file, so
    the scalar is listed under both names.
    """
    import numpy as np
    from bpnetlite.bpnet import BPNet
    from bpnetlite.logging import Logger

    scalar = (getattr(np, "_core", None) or np.core).multiarray.scalar
    allowed = [BPNet, Logger, nn.Conv1d, nn.Linear, nn.ModuleList, nn.ReLU, np.dtype, scalar,
               (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]
    allowed += [type(np.dtype(code)) for code in "?bBhHiIlLqQefdFD"]
    return allowed


def _load_bpnet_pickle(path: str | os.PathLike, trust: bool | None = None):
    fix = "pass a file written by torch.save(bpnet), torch.save(bpnet.state_dict()) or Puffin's puffin.pth"
    try:
        return load_pickled_checkpoint(path, extra_globals=bpnet_safe_globals(), trust=trust, field="weights",
                                       unreadable="not a bpnet-lite / Puffin model or state dict", fix=fix)
    except GenoclInputError:
        raise
    except Exception as err:
        raise input_error(path, "weights", f"not a bpnet-lite / Puffin model or state dict ({type(err).__name__})",
                          fix) from None


def load_bpnet_file(path: str | os.PathLike, seq_len: int | None = None,
                    trust: bool | None = None, obj=None) -> GenoclLightningModel:
    """Load a bpnet-lite saved model or a ProCapNet fold state dict.

    A whole saved ``BPNet`` is unpickled with ``weights_only=True`` and an allow-list of the
    bpnet-lite and torch classes it contains (:func:`bpnet_safe_globals`), so no arbitrary code
    runs. ``obj``: the file's content when the caller has read it already.
    """
    if obj is None:
        obj = _load_bpnet_pickle(path, trust)
    state = obj.state_dict() if isinstance(obj, nn.Module) else obj
    if not isinstance(state, dict) or "iconv.weight" not in state:
        raise input_error(path, "weights", "no BPNet weights (iconv.weight missing)",
                          "pass a BPNet / ProCapNet state dict")
    for key in ("fconv.weight", "iconv.weight"):
        if key not in state or not isinstance(state[key], torch.Tensor) or state[key].ndim != 3:
            raise input_error(path, key, "missing or not a 3-D convolution weight",
                              "pass a complete BPNet / ProCapNet state dict")
    n_filters = state["iconv.weight"].shape[0]
    n_layers = len([k for k in state if k.startswith("rconvs.") and k.endswith(".weight")])
    n_outputs = state["fconv.weight"].shape[0]
    n_control = state["fconv.weight"].shape[1] - n_filters
    trimming = getattr(obj, "trimming", None)
    params = {"model_type": "ProCapNetBPNet", "n_filters": int(n_filters),
              "n_layers": int(n_layers), "n_outputs": int(n_outputs),
              "n_control_tracks": int(n_control),
              "trimming": int(trimming) if trimming is not None else None}
    if n_control:
        raise input_error(path, "weights", f"{n_control} control tracks",
                          "genocl supports ProCapNet-style BPNets without control tracks")
    model = GenoclLightningModel(params, {"task": "regression", "loss": "procapnet"})
    try:
        model.model.bpnet.load_state_dict(state)
    except (RuntimeError, KeyError) as err:
        # load_state_dict lists every missing / unexpected key and shape; the first is enough.
        text = " ".join(str(err).split())
        first = text.split(":", 1)[1].strip() if text.startswith("Error(s)") else text
        first = first.split(". ")[0][:200] or type(err).__name__
        raise input_error(path, "weights", f"state dict does not fit a BPNet ({first})",
                          "pass a complete, unmodified BPNet / ProCapNet state dict") from None
    trim = model.model.bpnet.trimming
    model.data_params = {
        "tasks": {"name": ["plus", "minus"][:n_outputs] if n_outputs <= 2 else
                  [f"track_{i}" for i in range(n_outputs)]},
        "train": {"seq_len": int(seq_len or 2 * trim + 1000), "bin_size": 1},
        "arch": "procapnet",
    }
    return model
