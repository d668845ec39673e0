"""A model's geometry: input length, output positions and bin size, and its reference outputs.

:class:`Geometry` is what every reference window is cut at; :func:`reference_output_names`
names the outputs the reference set covers (the tracks before any ``screen:`` head);
:func:`pool_to_bins` sums model outputs into coarser bins.
"""

from __future__ import annotations

from dataclasses import dataclass

from genocl_plugin.errors import input_error


@dataclass(frozen=True)
class Geometry:
    """Input length and output layout of a model.

    Attributes
    ----------
    seq_len
        Input length (bp).
    n_out
        Output positions per input.
    bin_size
        bp per output position.
    offset
        bp from the input start to the first output position (centred output).
    """

    seq_len: int
    n_out: int
    bin_size: int
    offset: int

    @property
    def out_span(self) -> int:
        """bp covered by the output."""
        return self.n_out * self.bin_size

    @classmethod
    def of(cls, model, seq_len: int | None = None) -> Geometry:
        """The geometry of a genocl model, or of any gReLU model (probed with one forward pass)."""
        seq_len = int(seq_len or getattr(model, "seq_len", 0) or
                      (getattr(model, "data_params", {}) or {}).get("train", {}).get("seq_len") or 0)
        if seq_len <= 0:
            raise input_error("reference set", "seq_len", "the model records no input length", "pass seq_len=...")
        if hasattr(model, "output_length"):
            n_out, bin_size = int(model.output_length(seq_len)), int(model.bin_size)
        else:
            import torch

            with torch.no_grad():
                was_training = model.training
                model.eval()
                n_out = int(model(torch.zeros(1, 4, seq_len, device=model.device)).shape[-1])
                model.train(was_training)
            bin_size = int((model.data_params.get("train", {}) or {}).get("bin_size") or seq_len // n_out)
        return cls(seq_len, n_out, bin_size, (seq_len - n_out * bin_size) // 2)


def reference_output_names(model) -> list[str]:
    """Names of a model's reference outputs: its tracks before any ``screen:`` head."""
    data_params = getattr(model, "data_params", None) or {}
    names = getattr(model, "task_names", None) or (data_params.get("tasks") or {}).get("name")
    if names is None or len(names) == 0:
        # a gReLU LightningModel built without data: its head knows how many tracks it predicts
        names = [f"track_{i}" for i in range(int(model.model.head.n_tasks))]
    names = list(names)
    return [n for n in names if not str(n).startswith("screen:")]


def pool_to_bins(pred, factor: int):
    """Sum consecutive positions (n, tracks, L) into bins of ``factor`` (a trailing remainder is dropped)."""
    if factor == 1:
        return pred
    n, t, length = pred.shape
    usable = length // factor * factor
    return pred[..., :usable].reshape(n, t, usable // factor, factor).sum(-1)
