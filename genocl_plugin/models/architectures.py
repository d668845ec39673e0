"""Networks genocl adds to gReLU's, each returning log predicted coverage, and the ProCapNet loss.

Every network here maps one-hot DNA (batch, 4, length) to **log predicted coverage** of shape
(batch, tracks, length): ProCapNet / BPNet through bpnet-lite, Enformer through
enformer-pytorch and Borzoi through borzoi-pytorch (an optional dependency, imported only when a
Borzoi is built). Puffin's network lives in :mod:`genocl_plugin.models.puffin`. Also here: the
settings of the bundled mini models and ProCapNet's loss on log coverage.
"""

from __future__ import annotations

import torch
from torch import nn

from genocl_plugin.errors import input_error

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


# borzoi-pytorch (johahi/borzoi-pytorch) is an optional dependency: its 0.5 releases need
# transformers>=4.57.6, which enformer-pytorch 0.8.12 refuses (it pins transformers==4.56.2), so
# the `borzoi` extra also caps enformer-pytorch (setup.cfg).
BORZOI_EXTRA = "pip install 'genocl[borzoi]'"


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


def borzoi_pytorch_output_bins(config: dict) -> int:
    """Output bins of a borzoi-pytorch model: its centre crop (6,144 of the 16,384 32-bp bins)."""
    if config.get("return_center_bins_only", True):
        return int(config.get("bins_to_return", 6144))
    return 16384 - 32  # borzoi-pytorch's crop when return_center_bins_only is False
