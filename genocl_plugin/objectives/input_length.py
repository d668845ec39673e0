"""``--mpra-input-length``: which screens take it, and which input lengths a model can take.

MPRA constructs and activity libraries are episomal, so their sequences can be centred in an
input shorter than the model's own; the other assays need the genome around the element.
"""

from __future__ import annotations

import torch

from genocl_plugin.errors import input_error


def check_mpra_assay(assay: str, path: str = "<screen>") -> None:
    """Refuse ``--mpra-input-length`` for a screen that is neither an MPRA nor an activity library
    (the other assays need the genome around the element)."""
    if assay not in ("mpra", "activity"):
        raise input_error(path, "uns['assay']", f"is {assay!r}; --mpra-input-length applies to activity and "
                          "MPRA screens only", "leave --mpra-input-length out")


def check_input_length(model, seq_len: int, longest: int, path: str = "<screen>",
                       what: str = "uns['element_sequences']") -> None:
    """Refuse an MPRA input length the model cannot take or whose output misses an element.

    Parameters
    ----------
    model
        The model (``output_length``, ``bin_size``, ``seq_len``).
    seq_len
        The requested input length (bp).
    longest
        Length of the screen's longest element (bp): it must lie inside the model's output.
    path
        The screen, for the error message.
    what
        The screen field holding the sequences (named in the error).

    Raises
    ------
    click.UsageError
        (via :func:`~genocl_plugin.errors.input_error`) naming ``--mpra-input-length``.
    """
    field = "--mpra-input-length"
    if seq_len == model.seq_len:
        return
    if seq_len % model.bin_size:
        raise input_error(seq_len, field, f"is not a multiple of the model's {model.bin_size}-bp output bins",
                          f"pass a multiple of {model.bin_size}")
    span = model.output_length(seq_len) * model.bin_size
    if span > seq_len or span <= 0:
        # enformer-pytorch / borzoi-pytorch crop their output to a fixed number of bins
        raise input_error(seq_len, field, f"is too short for this model: its output would need {span} bp of input"
                          if span > 0 else "leaves the model no output positions",
                          f"leave {field} out or pass at least the model's input ({model.seq_len} bp)"
                          if span > 0 else "pass a longer input length")
    if longest > span:
        raise input_error(path, what,
                          f"an element of {longest} bp does not fit the {span}-bp output of a {seq_len}-bp input "
                          f"({field})", f"pass a {field} whose output covers {longest} bp")
    # Some architectures need more than whole bins (e.g. a U-net's pooling levels): one forward says.
    weight = next(model.parameters(), None)
    probe = torch.zeros(1, 4, seq_len, device=weight.device if weight is not None else "cpu")
    training = model.training
    model.eval()  # BatchNorm must not learn statistics from the probe
    try:
        with torch.no_grad():
            out = model(probe, logits=True)
        ok = out.shape[-1] == model.output_length(seq_len)
    except Exception:  # whatever the architecture raises, the user's fix is the same
        ok = False
    finally:
        model.train(training)
    if not ok:
        raise input_error(seq_len, field, "is not an input length this model accepts",
                          f"leave {field} out (the model's input, {model.seq_len} bp) or try a multiple of "
                          f"{model.bin_size * 16}")
