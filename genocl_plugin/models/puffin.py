"""Puffin (Dudnyk et al., Science 2024): a transcription-initiation model, written for genocl.

Puffin reads one-hot DNA with three banks of motif convolutions applied to both strands
(``conv``: 10 motifs x 51 bp, ``conv_inr``: 10 initiator motifs x 15 bp, ``conv_sim``: 32
trinucleotide-like filters x 3 bp), passes the 104 activations through softplus, and turns them
into base-pair initiation signal with 601-bp "effect" convolutions (``deconv``, ``deconv_sim``)
and a transposed 15-bp convolution (``deconv_inr``), summed and passed through softplus again.
The architecture follows ``Puffin.forward`` of jzhoulab/puffin (``puffin.py``), written here
from its description: that repository's FFT convolutions compute an ordinary 1-d convolution.

Its output ``softplus(z)`` is ``ln(signal + 1)`` (the authors' scale), so ``z`` itself is the
log of the predicted signal: :class:`PuffinTracks` returns ``z``, which is genocl's
log-coverage convention (activation ``exp``), with no approximation.

Outputs (Puffin's order): FANTOM CAGE, ENCODE CAGE, ENCODE RAMPAGE, GRO-cap, PRO-cap on the
+ strand, then PRO-cap, GRO-cap, RAMPAGE, ENCODE CAGE, FANTOM CAGE on the - strand. Each
output position needs 325 bp of sequence on either side, so ``L`` bp in give ``L - 650`` out.

The released weights (``resources/puffin.pth``) are for academic research use only (University
of Texas Southwestern licence); genocl never ships them, and a zoo entry of a Puffin-derived
model carries the notice (:data:`LICENCE_NOTICE`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

TRIM = 325  # bp of context each output position needs on either side (Puffin's predict trims these)
N_MOTIF, N_INR, N_SIM = 10, 10, 32  # filters per bank, per strand
N_FEATURES = 2 * (N_MOTIF + N_INR + N_SIM)  # 104 motif activations (both strands)
DEFAULT_SEQ_LEN = 1_650  # 1,000 bp predicted, as in Puffin's README example
TRACK_NAMES = [
    "CAGE:FANTOM5 +", "CAGE:ENCODE +", "RAMPAGE:ENCODE +", "GRO-cap +", "PRO-cap +",
    "PRO-cap -", "GRO-cap -", "RAMPAGE:ENCODE -", "CAGE:ENCODE -", "CAGE:FANTOM5 -",
]
# Keys of the released state dict; ``scaler``/``scaler2`` are parameters Puffin.forward never uses.
STATE_KEYS = {f"{m}.{p}" for m in ("conv", "conv_inr", "conv_sim", "deconv", "deconv_sim", "deconv_inr")
              for p in ("weight", "bias")}
UNUSED_KEYS = {"scaler", "scaler2"}
LICENCE_NOTICE = (
    "Derived from Puffin (Dudnyk, Cai, Zhou; Science 2024; github jzhoulab/puffin). The Puffin weights are "
    "licensed by the University of Texas Southwestern Medical Center for academic research use only; "
    "no commercial use. Redistribution must keep this notice and the licence text (LICENSE).")
# The licence text of the weights (jzhoulab/puffin LICENSE), shipped so derived zoo entries carry it.
LICENCE_TEXT = (Path(__file__).resolve().parents[1] / "bundled" / "PUFFIN_LICENSE.txt").read_text()


def is_puffin_state(state: object) -> bool:
    """Whether a loaded object is a Puffin state dict (its twelve layer tensors by name)."""
    return isinstance(state, dict) and STATE_KEYS <= {str(k) for k in state}


class FFTConv1d(nn.Conv1d):
    """``nn.Conv1d`` (same weights, same output) computed through the FFT, for Puffin's 601-bp kernels.

    Puffin itself uses an FFT convolution for these layers. On a CPU a direct 601-tap convolution
    of 84 channels is the whole cost of a training step; through the FFT the forward is ~20x and
    the backward ~35x faster (measured: batch 32 x 1,400 bp, 64 -> 10 channels, 2 cores), and the
    result agrees with ``F.conv1d`` to float32 rounding (max |diff| 2e-5 on outputs of size ~46).
    Only stride 1, dilation 1, groups 1 and integer padding are used by Puffin, and only those
    are supported.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length, kernel = x.shape[-1], self.kernel_size[0]
        pad = int(self.padding[0])
        n_fft = 1 << (length + kernel - 2).bit_length()  # >= length + kernel - 1: no wrap-around
        # cross-correlation (what Conv1d computes) = convolution with the flipped kernel
        spectrum = torch.einsum("bcf,ocf->bof", torch.fft.rfft(x, n_fft), torch.fft.rfft(self.weight.flip(-1), n_fft))
        full = torch.fft.irfft(spectrum, n_fft)
        start = kernel - 1 - pad
        out = full[..., start:start + length + 2 * pad - kernel + 1]
        return out + self.bias[None, :, None] if self.bias is not None else out


def _both_strands(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A motif bank on the + strand and on the reverse complement, aligned to + positions."""
    return torch.cat([conv(x), conv(x.flip([1, 2])).flip([2])], dim=1)


class PuffinMotifs(nn.Module):
    """The motif layer: (batch, 4, L) one-hot -> (batch, 104, L) softplus motif activations.

    Channel order: the 20 motif activations (+ strand then - strand), the 20 initiator ones,
    then the 64 trinucleotide ones, as the effect layer reads them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, N_MOTIF, kernel_size=51, padding=25)
        self.conv_inr = nn.Conv1d(4, N_INR, kernel_size=15, padding=7)
        self.conv_sim = nn.Conv1d(4, N_SIM, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activations = [_both_strands(c, x) for c in (self.conv, self.conv_inr, self.conv_sim)]
        return nn.functional.softplus(torch.cat(activations, dim=1))


class PuffinEffects(nn.Module):
    """The effect layer: 104 motif activations -> 10 tracks of log initiation signal (pre-softplus)."""

    def __init__(self) -> None:
        super().__init__()
        self.deconv = FFTConv1d(2 * N_MOTIF, 10, kernel_size=601, padding=300)
        self.deconv_inr = nn.ConvTranspose1d(2 * N_INR, 10, kernel_size=15, padding=7)
        self.deconv_sim = FFTConv1d(2 * N_SIM, 10, kernel_size=601, padding=300)
        # multihead reads the trunk width from the effect layer's input
        self.in_channels = N_FEATURES

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        motif, inr, sim = features.split([2 * N_MOTIF, 2 * N_INR, 2 * N_SIM], dim=1)
        return self.deconv(motif) + self.deconv_inr(inr) + self.deconv_sim(sim)


class Puffin(nn.Module):
    """Puffin's two layers: (batch, 4, L) -> (batch, 10, L) log initiation signal, untrimmed."""

    def __init__(self) -> None:
        super().__init__()
        self.motifs = PuffinMotifs()
        self.effects = PuffinEffects()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.effects(self.motifs(x))


class PuffinTracks(nn.Module):
    """Puffin as genocl log predicted coverage: (batch, 4, L) -> (batch, 10, L - 650).

    ``exp`` of the output is Puffin's predicted signal; ``log1p`` of that is what the authors'
    ``Puffin.forward`` returns. The positions within 325 bp of either end, which would see the
    zero padding, are trimmed (Puffin's ``predict`` trims the same).
    """

    def __init__(self) -> None:
        super().__init__()
        self.puffin = Puffin()
        # gReLU's LightningModel reads model.head.n_tasks for its metrics.
        self.head = nn.Module()
        self.head.n_tasks = len(TRACK_NAMES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.puffin(x)[..., TRIM:-TRIM]

    def load_puffin_state(self, state: dict) -> None:
        """Load the released ``puffin.pth`` state dict (Puffin's own parameter names), strictly.

        Raises
        ------
        RuntimeError
            A tensor is missing or of the wrong shape (``load_state_dict``'s message).
        """
        mapped = {}
        for key, value in state.items():
            if key in UNUSED_KEYS:
                continue
            part = "effects" if str(key).startswith("deconv") else "motifs"
            mapped[f"{part}.{key}"] = value
        self.puffin.load_state_dict(mapped, strict=True)
