"""Perturbation-aware objectives: train a model on what a screen measured.

A screen measures the *effect* of a perturbation, so the model is trained on its predicted
effect, not on a track:

- MPRA: ``log2(activity(alt) / activity(ref))`` where the activity is the predicted signal
  summed over the bins the element covers and over the readout tracks (Enformer: CAGE +
  DNase; ProCapNet: both strands, i.e. the predicted total counts). The element is centred
  in the model input and padded with N (MPRA constructs are episomal).
- CRISPRi: ``log2(signal_TSS(silenced) / signal_TSS(reference))`` where the silenced
  sequence has each element replaced by a dinucleotide shuffle (or N-masked) and the TSS
  signal is the readout tracks (Enformer: CAGE; ProCapNet: both strands) in the bins at the
  TSS. Each pair has its own window of the model's input length holding the element(s) and
  the TSS, with the TSS inside the output; pairs that cannot fit are skipped and counted.

The model's ``forward(x, logits=True)`` is log coverage, so an activity is a ``logsumexp``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from genocl_plugin.data import reference
from genocl_plugin.errors import input_error
from genocl_plugin.objectives.input_length import check_input_length
from genocl_plugin.objectives.readout import LN2, _output_window, activity, readout_mask, readout_tracks


def predicted_effects(model, batch: dict, logits_fn=None) -> torch.Tensor:
    """Predicted log2 effect (perturbed vs reference) for a perturbation batch.

    Parameters
    ----------
    model
        A :class:`~genocl_plugin.models.GenoclLightningModel` (or anything whose
        ``forward(x, logits=True)`` returns log coverage).
    batch
        From :func:`collate_perturbations`: ``ref`` (unique references), ``ref_index``,
        ``alt``, ``lo``, ``hi``, ``track_mask``.

    Returns
    -------
    torch.Tensor
        (batch,) predicted log2 effects.
    """
    forward = logits_fn or (lambda x: model(x, logits=True))
    n_ref = batch["ref"].shape[0]
    # One forward over references and perturbed sequences together: references are shared
    # by many MPRA variants, so they are computed once per batch.
    out = forward(torch.cat([batch["ref"], batch["alt"]]))
    ref_out, alt_out = out[:n_ref][batch["ref_index"]], out[n_ref:]
    mask = readout_mask(model, batch["track_mask"], out)
    ref_act = activity(ref_out, mask, batch["lo"], batch["hi"])
    alt_act = activity(alt_out, mask, batch["lo"], batch["hi"])
    return (alt_act - ref_act) / LN2


def effect_loss(predicted: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
    """Mean squared error between predicted and measured log2 effects."""
    return torch.mean((predicted - measured) ** 2)


def apply_variant(seq: str, pos: int, ref: str, alt: str) -> str:
    """Substitute ``alt`` for ``ref`` at 0-based ``pos`` (``alt == "-"``: delete ``ref``)."""
    if seq[pos : pos + len(ref)].upper() != ref.upper():
        raise ValueError(f"ref {ref} does not match sequence at {pos}")
    return seq[:pos] + ("" if alt == "-" else alt) + seq[pos + len(ref):]


def dinuc_shuffle_codes(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dinucleotide-preserving shuffle of a uint8 code sequence (Altschul-Erickson).

    Uses gReLU's implementation on each run of A/C/G/T; N positions stay where they are
    (gReLU's shuffle, tangermeme's underneath, refuses N, and an element window can reach into
    an assembly gap or past a contig end).
    """
    from grelu.sequence.utils import dinuc_shuffle

    out = np.array(codes, dtype=np.uint8, copy=True)
    known = np.concatenate([[False], out < 4, [False]])
    edges = np.flatnonzero(np.diff(known.astype(np.int8)))
    for lo, hi in zip(edges[::2], edges[1::2], strict=True):
        if hi - lo < 3:  # nothing to shuffle while keeping the dinucleotides
            continue
        seed = int(rng.integers(0, 2**31 - 1))
        shuffled = dinuc_shuffle(reference.codes_to_seq(out[lo:hi]), n_shuffles=1, seed=seed)
        out[lo:hi] = reference.seq_to_codes(shuffled[0] if isinstance(shuffled, list) else shuffled)
    return out


def silence(codes: np.ndarray, start: int, end: int, method: str, rng: np.random.Generator) -> np.ndarray:
    """Replace ``codes[start:end]`` by a dinucleotide shuffle (``shuffle``) or N (``mask``)."""
    out = codes.copy()
    if method == "mask":
        out[start:end] = 4
    elif method == "shuffle":
        out[start:end] = dinuc_shuffle_codes(codes[start:end], rng)
    else:
        raise ValueError(f"unknown silencing method {method!r}")
    return out


class PerturbationDataset(Dataset):
    """Reference / perturbed sequence pairs with their readout window and measured effect.

    Build it with :func:`mpra_dataset` or :func:`crispri_dataset`.
    """

    def __init__(self, refs: list[np.ndarray], ref_index: np.ndarray, alts: list[np.ndarray],
                 lo: np.ndarray, hi: np.ndarray, effect: np.ndarray, track_mask: np.ndarray,
                 names: list[str], groups: list[str]) -> None:
        self.refs, self.ref_index, self.alts = refs, ref_index, alts
        self.lo, self.hi, self.effect = lo, hi, effect.astype(np.float32)
        self.track_mask = torch.as_tensor(track_mask, dtype=torch.bool)
        self.names, self.groups = names, groups

    def __len__(self) -> int:
        return len(self.alts)

    def __getitem__(self, i: int) -> dict:
        return {"ref_id": int(self.ref_index[i]), "ref": self.refs[self.ref_index[i]],
                "alt": self.alts[i], "lo": int(self.lo[i]), "hi": int(self.hi[i]),
                "effect": float(self.effect[i]), "track_mask": self.track_mask}


def collate_perturbations(items: list[dict]) -> dict:
    """Collate perturbation items, keeping each distinct reference sequence once."""
    ids = sorted({it["ref_id"] for it in items})
    pos = {r: i for i, r in enumerate(ids)}
    first = {it["ref_id"]: it["ref"] for it in items}
    return {
        "ref": torch.from_numpy(reference.codes_to_one_hot(np.stack([first[r] for r in ids]))),
        "ref_index": torch.tensor([pos[it["ref_id"]] for it in items]),
        "alt": torch.from_numpy(reference.codes_to_one_hot(np.stack([it["alt"] for it in items]))),
        "lo": torch.tensor([it["lo"] for it in items]),
        "hi": torch.tensor([it["hi"] for it in items]),
        "effect": torch.tensor([it["effect"] for it in items], dtype=torch.float32),
        "track_mask": items[0]["track_mask"],
    }


def mpra_dataset(screen, model, path: str = "<screen>", readout: str | None = None,
                 seq_len: int | None = None) -> PerturbationDataset:
    """Build the MPRA pairs of a screen for a model.

    Each element is centred in an input of ``seq_len`` bp (default ``model.seq_len``), padded
    with N; each variant is applied to the element before padding. MPRA constructs are
    episomal, so the padding carries no genomic context: an input just longer than the
    model's receptive field around the element gives the same kind of prediction at a fraction
    of the cost (a 600-bp element in Enformer's 196,608-bp input is 0.3% of it).
    """
    sequences = screen.uns["element_sequences"]
    elements = sorted(screen.obs["element"].astype(str).unique())
    if seq_len is None:
        seq_len = model.seq_len
    else:
        check_input_length(model, int(seq_len), max(len(sequences[e]) for e in elements), path)
    ref_codes, offsets, windows = [], {}, {}
    for element in elements:
        seq = sequences[element]
        if len(seq) > seq_len:
            raise input_error(path, "uns['element_sequences']",
                              f"element {element} ({len(seq)} bp) is longer than the model input ({seq_len} bp)",
                              "use a model with a longer input or shorter elements")
        offset = (seq_len - len(seq)) // 2
        codes = np.full(seq_len, 4, dtype=np.uint8)
        codes[offset : offset + len(seq)] = reference.seq_to_codes(seq)
        offsets[element] = offset
        windows[element] = _output_window(model, seq_len, offset, offset + len(seq))
        ref_codes.append(codes)
    index = {e: i for i, e in enumerate(elements)}
    alts, ref_index, lo, hi = [], [], [], []
    obs = screen.obs
    for element, pos, ref, alt in zip(obs["element"].astype(str), obs["pos"].astype(int),
                                      obs["ref"].astype(str), obs["alt"].astype(str), strict=True):
        seq = apply_variant(sequences[element], pos, ref, alt)[: seq_len - offsets[element]]
        codes = np.full(seq_len, 4, dtype=np.uint8)
        codes[offsets[element] : offsets[element] + len(seq)] = reference.seq_to_codes(seq)
        alts.append(codes)
        ref_index.append(index[element])
        lo.append(windows[element][0])
        hi.append(windows[element][1])
    mask = np.zeros(len(model.task_names), dtype=bool)
    mask[readout_tracks(model, "mpra", readout, screen.uns.get("cell_type"))] = True
    return PerturbationDataset(ref_codes, np.array(ref_index), alts, np.array(lo), np.array(hi),
                               obs["effect"].to_numpy(float), mask, list(obs.index),
                               list(obs["element"].astype(str)))


def crispri_dataset(screen, model, silencing: str = "shuffle", seed: int = 0,
                    tss_bins: int = 1, readout: str | None = None,
                    path: str = "<screen>") -> PerturbationDataset:
    """Build the CRISPRi pairs (reference vs silenced) of a screen for a model.

    Each pair gets its own input window of ``model.seq_len`` bp (the model's own input length)
    from :func:`genocl_plugin.data.screens.crispri_window_start`: the element(s) inside the input,
    the TSS readout inside the output, centred between them where possible; sequence past a
    contig end is N. Pairs no window can hold are skipped (``dataset.skipped`` counts them,
    ``dataset.fit_message`` says so).

    Parameters
    ----------
    screen
        A validated ``assay="crispri"`` screen.
    model
        The model to train.
    silencing
        ``shuffle`` (dinucleotide shuffle of each element) or ``mask`` (N).
    seed
        Seed of the shuffles (fixed, so every epoch sees the same silenced sequence).
    tss_bins
        Readout half-width in output bins around the TSS (at least 32 bp).
    readout
        ``--readout-tracks`` (see :func:`readout_tracks`).
    path
        The screen file, named in errors.

    Raises
    ------
    GenoclInputError
        No pair fits the model's geometry.
    """
    from genocl_plugin.data.crispri import crispri_window_start, drop_unfit_crispri, readout_half_width
    from genocl_plugin.data.intervals import parse_interval

    n_rows = screen.n_obs
    screen, message = drop_unfit_crispri(screen, model, path, tss_bins)
    source = screen.uns["sequence_source"]
    fasta = None if source == "bundled" else reference.open_fasta(source, field="uns['sequence_source']")
    seq_len = int(model.seq_len)
    rng = np.random.default_rng(seed)
    refs, alts, lo, hi = [], [], [], []
    half = readout_half_width(model, tss_bins)
    for chrom, tss, elements in zip(screen.obs["tss_chrom"].astype(str), screen.obs["tss_pos"].astype(int),
                                    screen.obs["elements"].astype(str), strict=True):
        iv = [parse_interval(x) for x in elements.split(";")]
        start = crispri_window_start(model, tss, iv, half)
        codes = reference.fetch_codes(chrom, start, start + seq_len, fasta=fasta)
        silenced = codes
        for _, s, e in iv:
            silenced = silence(silenced, s - start, e - start, silencing, rng)
        refs.append(codes)
        alts.append(silenced)
        window = _output_window(model, seq_len, tss - start - half, tss - start + half)
        lo.append(window[0])
        hi.append(window[1])
    mask = np.zeros(len(model.task_names), dtype=bool)
    mask[readout_tracks(model, "crispri", readout, screen.uns.get("cell_type"))] = True
    dataset = PerturbationDataset(refs, np.arange(len(refs)), alts, np.array(lo), np.array(hi),
                                  screen.obs["effect"].to_numpy(float), mask, list(screen.obs_names),
                                  list(screen.obs["elements"].astype(str)))
    dataset.skipped = n_rows - screen.n_obs
    dataset.fit_message = message
    return dataset
