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

import hashlib
import math

import numpy as np
import torch
from torch.utils.data import Dataset

from genocl_plugin.data import reference
from genocl_plugin.errors import input_error

LN2 = math.log(2.0)


def readout_tracks(model, assay: str, spec: str | None = None, cell_type: str | None = None) -> list[int]:
    """Indices of the tracks whose signal is the assay's readout.

    Parameters
    ----------
    model
        The model (its ``task_names``).
    assay
        ``mpra`` or ``crispri``.
    spec
        ``--readout-tracks``: indices, exact names, globs or ``re:`` regexes over the track names
        (:func:`genocl_plugin.data.reference.match_tracks`); overrides the default.
    cell_type
        The screen's ``uns["cell_type"]``: the default prefers that cell type's tracks.

    Default: Enformer-style models with named tracks read CAGE (+ DNase for MPRA, which measures
    enhancer activity in a reporter) -- only the screen's cell type's when it has such tracks;
    otherwise every track (ProCapNet: both strands = total counts).
    """
    names = [str(n) for n in model.task_names]
    if spec:
        return reference.match_tracks(names, spec)
    groups = ("CAGE", "DNASE") if assay == "mpra" else ("CAGE",)
    idx = [i for i, n in enumerate(names) if reference.assay_group(n) in groups and not n.startswith("screen:")]
    if cell_type and idx:
        wanted = str(cell_type).lower()
        own = [i for i in idx if wanted in names[i].lower()]
        idx = own or idx
    return idx or list(range(len(names)))


def activity(log_coverage: torch.Tensor, track_mask: torch.Tensor, lo: torch.Tensor,
             hi: torch.Tensor) -> torch.Tensor:
    """Natural-log activity: ``log(sum of predicted coverage over tracks and [lo, hi)``).

    Parameters
    ----------
    log_coverage
        (batch, tracks, positions) log predicted coverage.
    track_mask
        (tracks,) bool, the readout tracks.
    lo, hi
        (batch,) output positions delimiting the readout window of each example.

    Returns
    -------
    torch.Tensor
        (batch,) log activity.
    """
    positions = torch.arange(log_coverage.shape[-1], device=log_coverage.device)
    inside = (positions[None, :] >= lo[:, None]) & (positions[None, :] < hi[:, None])
    mask = track_mask.to(log_coverage.device)[None, :, None] & inside[:, None, :]
    masked = log_coverage.masked_fill(~mask, float("-inf"))
    return torch.logsumexp(masked.flatten(1), dim=-1)


def disable_dropout(model: torch.nn.Module) -> list:
    """Put the model's dropout layers that are training in eval mode; returns them (to restore).

    A screen measures a difference between two predictions (perturbed vs reference; one person
    vs another). In train mode each sequence gets its own dropout mask, and that noise swamps
    the difference: on the bundled enformer-mini (transformer dropout 0.4), two train-mode
    passes over the same 32 Kircher variants give effects that differ by sd 0.114, while the
    effects themselves have sd 0.028 (measured 2026-11-30), so fine-tuning fitted dropout noise.
    ``GenoclLightningModel.on_train_batch_start`` calls this for every screen batch, so the whole
    step (strategy terms included) runs in one mode, which gradient checkpointing needs: its
    backward recomputes each block in the mode the block is in then. BatchNorm is untouched (the
    sequences of a comparison share one forward, hence one set of batch statistics).
    """
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.training]
    for layer in layers:
        layer.eval()
    return layers


def is_comparison(batch) -> bool:
    """Whether a training batch is a screen comparison (perturbation or personal genomes).

    Track crops and activity libraries are not: an activity batch scores different sequences
    whose measured activities spread widely (WTC11 lentiMPRA: sd 1.1 log2), so it keeps its
    dropout as ordinary training on tracks does (see :func:`activity_loss`).
    """
    return isinstance(batch, dict) and batch.get("kind") not in ("tracks", "activity")


def readout_mask(model, track_mask: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The tracks a screen batch reads: the dataset's ``track_mask``, or a multi-head model's
    screen head (strategies.multihead), whatever tracks the dataset was built for.

    ``out`` is the batch's (batch, tracks, positions) model output (its track count and device).
    """
    screen = getattr(model, "screen_tracks", None)
    if not screen:
        return track_mask
    mask = torch.zeros(out.shape[1], dtype=torch.bool, device=out.device)
    mask[screen] = True
    return mask


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


def dataset_fingerprint(dataset) -> str | None:
    """Content hash of a perturbation dataset (or a Subset of one); None for other kinds.

    Covers the sequences, readout windows and readout tracks -- everything a model's predicted
    effects depend on -- so two datasets with the same fingerprint get the same predictions
    from the same weights (``run_update(parent_predictions=...)`` shares them that way).
    """
    indices = None
    if isinstance(dataset, torch.utils.data.Subset):
        dataset, indices = dataset.dataset, np.asarray(dataset.indices)
    if isinstance(dataset, ActivityDataset):
        arrays = (*dataset.codes, dataset.offsets, np.array([dataset.seq_len]), dataset.lo, dataset.hi)
    elif isinstance(dataset, PerturbationDataset):
        arrays = (*dataset.refs, *dataset.alts, dataset.ref_index, dataset.lo, dataset.hi)
    else:
        return None
    digest = hashlib.sha1()
    for array in (*arrays, dataset.track_mask.numpy(), indices if indices is not None else np.zeros(0)):
        digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(b"|")
    return digest.hexdigest()


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


def _output_window(model, seq_len: int, start: int, end: int) -> tuple[int, int]:
    """Output positions overlapping input bp ``[start, end)`` for an input of ``seq_len``."""
    n_out = model.output_length(seq_len)
    offset = (seq_len - n_out * model.bin_size) // 2
    lo = max(0, (start - offset) // model.bin_size)
    hi = min(n_out, -(-(end - offset) // model.bin_size))
    return lo, max(hi, lo + 1)


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


def screen_dataset(screen, model, silencing: str = "shuffle", seed: int = 0,
                   path: str = "<screen>", readout: str | None = None, pairwise_alpha: float = 0.5,
                   max_items: int | None = None, mpra_seq_len: int | None = None):
    """The perturbation dataset of any supported screen (a PersonalDataset for personal genomes,
    a :class:`~genocl_plugin.data.tracks.TracksDataset` for coverage tracks).

    ``readout`` is ``--readout-tracks`` (see :func:`readout_tracks`); ``max_items`` subsamples
    the crops of a tracks screen (other screens are subsampled by row in ``prepare_screen``);
    ``mpra_seq_len`` is ``--mpra-input-length`` (MPRA and activity libraries only: the other
    assays need the genome around the element).
    """
    if mpra_seq_len is not None:
        check_mpra_assay(screen.uns["assay"], path)
    if screen.uns["assay"] == "activity":
        return activity_dataset(screen, model, path=path, readout=readout, seq_len=mpra_seq_len)
    if screen.uns["assay"] == "tracks":
        from genocl_plugin.data.tracks import tracks_dataset

        return tracks_dataset(screen, model, path=path, max_crops=max_items, seed=seed)
    if screen.uns["assay"] == "personal":
        return personal_dataset(screen, model, alpha=pairwise_alpha, path=path, readout=readout)
    if screen.uns["assay"] == "mpra":
        return mpra_dataset(screen, model, path=path, readout=readout, seq_len=mpra_seq_len)
    return crispri_dataset(screen, model, silencing=silencing, seed=seed, readout=readout, path=path)


# --- Personal genomes (assay="personal") -----------------------------------------------------
#
# A row is one individual x one gene. Its predicted expression is the log2 of the readout
# signal (CAGE tracks; ProCapNet: both strands) in the bins at the gene's TSS, summed over the
# individual's two haplotype sequences (the reference window with that haplotype's SNVs).


class PersonalDataset(Dataset):
    """Individuals' two haplotype sequences around a gene's TSS with their measured expression.

    Sequences are built per item from the gene's reference window and the row's SNVs, so
    memory holds one reference window per gene, not two sequences per row. ``effect`` is the
    measured expression (the name the shared update/evaluate code reads); ``groups`` the gene.
    Build it with :func:`personal_dataset`.
    """

    kind = "personal"

    def __init__(self, gene_refs: list[np.ndarray], gene_index: np.ndarray, offsets: list[np.ndarray],
                 alt_codes: list[np.ndarray], hap_codes: list[np.ndarray], lo: np.ndarray, hi: np.ndarray,
                 expression: np.ndarray, track_mask: np.ndarray, names: list[str], genes: list[str],
                 individuals: list[str], alpha: float = 0.5) -> None:
        self.gene_refs, self.gene_index = gene_refs, np.asarray(gene_index)
        self.offsets, self.alt_codes, self.hap_codes = offsets, alt_codes, hap_codes
        self.lo, self.hi, self.effect = lo, hi, np.asarray(expression, dtype=np.float32)
        self.track_mask = torch.as_tensor(track_mask, dtype=torch.bool)
        self.names, self.groups, self.individuals = names, genes, individuals
        self.alpha = float(alpha)

    def __len__(self) -> int:
        return len(self.names)

    def haplotypes(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The two haplotype code sequences of row ``i``."""
        from genocl_plugin.data.personal import apply_haplotypes

        return apply_haplotypes(self.gene_refs[self.gene_index[i]], self.offsets[i], self.alt_codes[i],
                                self.hap_codes[i])

    def __getitem__(self, i: int) -> dict:
        h1, h2 = self.haplotypes(i)
        return {"h1": h1, "h2": h2, "lo": int(self.lo[i]), "hi": int(self.hi[i]), "effect": float(self.effect[i]),
                "gene": int(self.gene_index[i]), "track_mask": self.track_mask, "alpha": self.alpha}


def collate_personal(items: list[dict]) -> dict:
    """Collate personal-genome rows; ``kind="personal"`` routes the batch to its loss.

    Identical haplotypes (common: people share most alleles in a window) are kept once in
    ``seqs``; ``i1`` / ``i2`` index each row's two haplotypes into it.
    """
    n = len(items)
    codes = np.stack([it["h1"] for it in items] + [it["h2"] for it in items])
    unique, inverse = np.unique(codes, axis=0, return_inverse=True)
    inverse = torch.as_tensor(inverse.reshape(-1))
    return {
        "kind": "personal",
        "seqs": torch.from_numpy(reference.codes_to_one_hot(unique)),
        "i1": inverse[:n], "i2": inverse[n:],
        "lo": torch.tensor([it["lo"] for it in items]),
        "hi": torch.tensor([it["hi"] for it in items]),
        "effect": torch.tensor([it["effect"] for it in items], dtype=torch.float32),
        "gene": torch.tensor([it["gene"] for it in items]),
        "track_mask": items[0]["track_mask"],
        "alpha": items[0]["alpha"],
    }


def predicted_expression(model, batch: dict, logits_fn=None) -> torch.Tensor:
    """Predicted log2 expression: log2 of the TSS readout summed over both haplotypes.

    Returns
    -------
    torch.Tensor
        (batch,) ``log2(signal(haplotype 1) + signal(haplotype 2))``.
    """
    forward = logits_fn or (lambda x: model(x, logits=True))
    out = forward(batch["seqs"])
    mask = readout_mask(model, batch["track_mask"], out)
    a1 = activity(out[batch["i1"]], mask, batch["lo"], batch["hi"])
    a2 = activity(out[batch["i2"]], mask, batch["lo"], batch["hi"])
    return torch.logaddexp(a1, a2) / LN2


def pairwise_loss(predicted: torch.Tensor, measured: torch.Tensor, gene: torch.Tensor,
                  alpha: float = 0.5) -> torch.Tensor:
    """Variformer's loss: ``alpha * MSE + (1 - alpha) * mean over same-gene pairs``.

    The pair term is the mean over pairs ``i < j`` of individuals of the same gene of
    ``((yhat_i - yhat_j) - (y_i - y_j))**2``: it trains differences between people, which a
    per-row MSE can fit by the gene's mean level alone. ``alpha=1`` is plain MSE. A batch
    without a same-gene pair contributes only ``alpha * MSE``.
    """
    mse = torch.mean((predicted - measured) ** 2)
    if alpha >= 1.0:
        return mse
    i, j = torch.triu_indices(len(predicted), len(predicted), offset=1, device=predicted.device)
    same = gene[i] == gene[j]
    if not bool(same.any()):
        return alpha * mse
    i, j = i[same], j[same]
    pair = torch.mean(((predicted[i] - predicted[j]) - (measured[i] - measured[j])) ** 2)
    return alpha * mse + (1.0 - alpha) * pair


class GeneBatchSampler(torch.utils.data.Sampler):
    """Batches of rows of one gene each (so every batch has same-gene pairs), shuffled per epoch.

    A gene with more rows than ``batch_size`` is cut into several batches; the order of the
    batches and of the rows within a gene is reshuffled each epoch from ``seed``.
    """

    def __init__(self, genes, batch_size: int, seed: int = 0, shuffle: bool = True) -> None:
        self.genes, self.batch_size = np.asarray(genes), max(1, int(batch_size))
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        batches = []
        for gene in dict.fromkeys(self.genes.tolist()):
            idx = np.flatnonzero(self.genes == gene)
            if self.shuffle:
                idx = rng.permutation(idx)
            batches += [idx[k : k + self.batch_size].tolist() for k in range(0, len(idx), self.batch_size)]
        if self.shuffle:
            batches = [batches[k] for k in rng.permutation(len(batches))]
        return batches

    def __iter__(self):
        batches = self._batches()
        self.epoch += 1
        return iter(batches)

    def __len__(self) -> int:
        return len(self._batches())


def personal_dataset(screen, model, alpha: float = 0.5, tss_bins: int = 1,
                     path: str = "<screen>", readout: str | None = None) -> PersonalDataset:
    """Build the personal-genome rows of a screen for a model.

    Parameters
    ----------
    screen
        A validated ``assay="personal"`` screen.
    model
        The model to train; its input is ``uns["input_length"]`` bp centred on each TSS (the
        window the converter selected variants for).
    alpha
        Weight of the MSE term in :func:`pairwise_loss` (1 = plain MSE).
    tss_bins
        Readout half-width in output bins around the TSS bin.
    readout
        ``--readout-tracks`` (see :func:`readout_tracks`).
    """
    import scipy.sparse as sp

    seq_len = int(screen.uns["input_length"])
    step = max(model.bin_size, 1)
    if seq_len % step:
        raise input_error(path, "uns['input_length']", f"{seq_len} bp is not a multiple of the model's "
                          f"{step}-bp bins", "re-run `genocl screen from-personal --model` for this model")
    source = screen.uns["sequence_source"]
    fasta = None if source == "bundled" else reference.open_fasta(source, field="uns['sequence_source']")
    variants = screen.uns["variants"]
    v_pos = np.asarray(variants["pos"], dtype=np.int64)
    v_alt = reference.seq_to_codes("".join(str(a).upper() for a in variants["alt"])) if len(v_pos) else \
        np.zeros(0, np.uint8)
    haps = sp.csr_matrix(screen.obsm["haplotypes"])
    obs = screen.obs
    half = max(1, tss_bins) * max(model.bin_size, reference.BIN_SIZE)
    keys, refs, gene_index, offsets, alts, codes, lo, hi = {}, [], [], [], [], [], [], []
    for r, (gene, chrom, tss) in enumerate(zip(obs["gene_id"].astype(str), obs["chrom"].astype(str),
                                               obs["tss"].astype(int), strict=True)):
        start = tss - seq_len // 2
        if (gene, chrom, tss) not in keys:
            keys[(gene, chrom, tss)] = len(refs)
            refs.append(reference.fetch_codes(chrom, start, start + seq_len, fasta=fasta))
        gene_index.append(keys[(gene, chrom, tss)])
        row = haps.indices[haps.indptr[r] : haps.indptr[r + 1]]
        offsets.append(v_pos[row] - start)
        alts.append(v_alt[row])
        codes.append(haps.data[haps.indptr[r] : haps.indptr[r + 1]].astype(np.uint8))
        window = _output_window(model, seq_len, tss - start - half, tss - start + half)
        lo.append(window[0])
        hi.append(window[1])
    mask = np.zeros(len(model.task_names), dtype=bool)
    mask[readout_tracks(model, "personal", readout, screen.uns.get("cell_type"))] = True
    return PersonalDataset(refs, np.array(gene_index), offsets, alts, codes, np.array(lo), np.array(hi),
                           obs["expression"].to_numpy(float), mask, list(obs.index),
                           list(obs["gene_id"].astype(str)), list(obs["individual"].astype(str)), alpha=alpha)


def collate_for(dataset):
    """The collate function matching a dataset (or a Subset of one)."""
    base = getattr(dataset, "dataset", dataset)
    if isinstance(base, ActivityDataset):
        return collate_activity
    if getattr(base, "kind", None) == "tracks":
        from genocl_plugin.data.tracks import collate_for_tracks

        return collate_for_tracks(base)
    return collate_personal if isinstance(base, PersonalDataset) else collate_perturbations


def predict_batch(model, batch: dict) -> torch.Tensor:
    """Predicted log2 effect (perturbation batches), log2 expression (personal batches) or log2
    activity (activity batches)."""
    if batch.get("kind") == "personal":
        return predicted_expression(model, batch)
    if batch.get("kind") == "activity":
        return predicted_activity(model, batch)
    return predicted_effects(model, batch)


def batch_size(batch) -> int:
    """Examples in a training batch: perturbation / personal rows (``effect``), track crops
    (``target``) or a gReLU ``(x, y)`` tuple."""
    if isinstance(batch, dict):
        return int(batch["effect" if "effect" in batch else "target"].shape[0])
    return int(batch[0].shape[0])


def batch_loss(model, batch: dict) -> torch.Tensor:
    """The training loss of a dict batch: pairwise/MSE for personal rows, the scale-free
    :func:`activity_loss` for activity libraries, effect MSE otherwise."""
    if batch.get("kind") == "activity":
        return activity_loss(predicted_activity(model, batch), batch["effect"])
    if batch.get("kind") == "personal":
        return pairwise_loss(predicted_expression(model, batch), batch["effect"], batch["gene"], batch["alpha"])
    if batch.get("kind") == "tracks":
        from genocl_plugin.data.tracks import tracks_loss

        return tracks_loss(model, batch)
    return effect_loss(predicted_effects(model, batch), batch["effect"])


@torch.no_grad()
def predict_screen_effects(model, dataset: PerturbationDataset, batch_size: int = 16) -> np.ndarray:
    """Predicted log2 effects for every row of a perturbation dataset (personal: log2 expression;
    activity library: log2 activity)."""
    if len(dataset) == 0:
        return np.zeros(0)
    model.eval()
    from genocl_plugin.progress import progress

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate_for(dataset))
    # a row of a full-size model is two long forward passes: minutes per batch on a CPU
    batches = progress(loader, total=len(dataset), description="predicting effects", unit="row",
                       count=lambda b: int(b["effect"].shape[0]))
    return np.concatenate([predict_batch(model, _to_device(b, model.device)).cpu().numpy() for b in batches])


def _to_device(batch: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


# --- Activity libraries (assay="activity") ---------------------------------------------------
#
# One sequence per row (lentiMPRA elements, STARR-seq fragments, promoter libraries) and its
# measured activity. The predicted activity is the MPRA readout of the sequence alone: it is
# centred in the model input and padded with N (as mpra_dataset centres an element), and its log2
# activity is the log of the predicted signal summed over the readout tracks and the output
# positions the sequence covers.


class ActivityDataset(Dataset):
    """Sequences of an activity library with their readout window and measured activity.

    Each sequence is stored once, unpadded, and padded with N to ``seq_len`` per item (an
    Enformer-length input per row would not fit in memory for a real library). ``effect`` is
    the measured activity (the name the shared update/evaluate code reads), ``groups`` the
    hold-out unit of each row. Build it with :func:`activity_dataset`.
    """

    kind = "activity"

    def __init__(self, codes: list[np.ndarray], seq_len: int, lo: np.ndarray, hi: np.ndarray,
                 activity: np.ndarray, track_mask: np.ndarray, names: list[str], groups: list[str]) -> None:
        self.codes, self.seq_len = codes, int(seq_len)
        self.offsets = np.array([(self.seq_len - len(c)) // 2 for c in codes], dtype=np.int64)
        self.lo, self.hi = np.asarray(lo), np.asarray(hi)
        self.effect = np.asarray(activity, dtype=np.float32)
        self.track_mask = torch.as_tensor(track_mask, dtype=torch.bool)
        self.names, self.groups = names, groups

    def __len__(self) -> int:
        return len(self.codes)

    def padded(self, i: int) -> np.ndarray:
        """Row ``i``'s sequence centred in ``seq_len`` bp of N (codes)."""
        out = np.full(self.seq_len, 4, dtype=np.uint8)
        out[self.offsets[i] : self.offsets[i] + len(self.codes[i])] = self.codes[i]
        return out

    def __getitem__(self, i: int) -> dict:
        return {"seq": self.padded(i), "lo": int(self.lo[i]), "hi": int(self.hi[i]),
                "effect": float(self.effect[i]), "track_mask": self.track_mask}


def collate_activity(items: list[dict]) -> dict:
    """Collate activity rows; ``kind="activity"`` routes the batch to :func:`activity_loss`."""
    return {
        "kind": "activity",
        "seqs": torch.from_numpy(reference.codes_to_one_hot(np.stack([it["seq"] for it in items]))),
        "lo": torch.tensor([it["lo"] for it in items]),
        "hi": torch.tensor([it["hi"] for it in items]),
        "effect": torch.tensor([it["effect"] for it in items], dtype=torch.float32),
        "track_mask": items[0]["track_mask"],
    }


def activity_dataset(screen, model, path: str = "<screen>", readout: str | None = None,
                     seq_len: int | None = None) -> ActivityDataset:
    """Build the rows of an activity screen for a model.

    Parameters
    ----------
    screen
        A validated ``assay="activity"`` screen.
    model
        The model to train.
    path
        The screen file, named in errors.
    readout
        ``--readout-tracks``; the default is the MPRA readout (:func:`readout_tracks` with
        ``"mpra"``: Enformer CAGE + DNase, ProCapNet both strands).
    seq_len
        ``--mpra-input-length``: the input each sequence is centred in (default ``model.seq_len``).
    """
    obs = screen.obs
    seqs = obs["sequence"].astype(str).tolist()
    longest = max((len(x) for x in seqs), default=0)
    if seq_len is None:
        seq_len = int(model.seq_len)
    else:
        check_input_length(model, int(seq_len), longest, path, what="obs['sequence']")
    if longest > seq_len:
        i = int(np.argmax([len(x) for x in seqs]))
        raise input_error(path, "obs['sequence']", f"row {obs.index[i]}: a {longest}-bp sequence is longer than the "
                          f"model input ({seq_len} bp)", "use a model (or --mpra-input-length) with a longer input, "
                          "or shorter sequences (`genocl screen from-activity --trim-adapters`)")
    codes, lo, hi, windows = [], [], [], {}
    for seq in seqs:
        codes.append(reference.seq_to_codes(seq.upper()))
        if len(seq) not in windows:
            offset = (seq_len - len(seq)) // 2
            windows[len(seq)] = _output_window(model, seq_len, offset, offset + len(seq))
        lo.append(windows[len(seq)][0])
        hi.append(windows[len(seq)][1])
    mask = np.zeros(len(model.task_names), dtype=bool)
    mask[readout_tracks(model, "mpra", readout, screen.uns.get("cell_type"))] = True
    groups = obs["group"].astype(str).tolist() if "group" in obs.columns else list(obs.index)
    return ActivityDataset(codes, seq_len, np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64),
                           obs["activity"].to_numpy(float), mask, list(obs.index), groups)


def predicted_activity(model, batch: dict, logits_fn=None) -> torch.Tensor:
    """Predicted log2 activity of each sequence of an activity batch.

    Returns
    -------
    torch.Tensor
        (batch,) log2 of the predicted signal summed over the readout tracks (a multi-head
        model's screen head when it has one, as in :func:`predicted_effects`) and the output
        positions the sequence covers.
    """
    forward = logits_fn or (lambda x: model(x, logits=True))
    out = forward(batch["seqs"])
    mask = readout_mask(model, batch["track_mask"], out)
    return activity(out, mask, batch["lo"], batch["hi"]) / LN2


ACTIVITY_EPS = 1e-8


def activity_loss(predicted: torch.Tensor, measured: torch.Tensor, eps: float = ACTIVITY_EPS) -> torch.Tensor:
    """Scale-free loss of an activity batch: ``1 - Pearson(predicted, measured)`` over the batch.

    Computed as half the mean squared difference of the two standardised vectors, which is
    ``1 - r`` (population standard deviations). The predicted log activity is on the model's own
    scale (another offset and spread than the measured log2 RNA/DNA), so only its agreement up
    to an increasing affine map is trained.

    Why Pearson and not the MSE after a per-batch least-squares calibration ``a * pred + b``
    (slope and intercept detached): with a standardised target that MSE equals ``1 - r**2``,
    blind to the sign of the correlation. A model that ranks the batch backwards gets a
    negative fitted slope, and with the slope detached the gradient then pushes the
    predictions further backwards. ``1 - r`` is lowest at ``r = 1`` only, is what the update
    reports (held-out Pearson), and the standardisation makes its value independent of the
    predictions' scale.

    ``eps`` is added to both variances, so identical predictions (or identical measurements,
    or a batch of one) give ``0.5 * mean(z**2)`` of the other side -- finite, with finite
    gradients -- instead of 0/0.

    Dropout stays on for these batches (:func:`is_comparison`): the rows are different
    sequences, not two near-identical sequences whose small difference dropout noise would
    swamp. On the bundled enformer-mini (dropout 0.4), 32 WTC11 lentiMPRA elements in train
    mode differ between two passes by sd 0.047 log2, against a spread of sd 0.73 between the
    elements (eval mode); an MPRA variant's effect has sd 0.028 against noise 0.114
    (:func:`disable_dropout`). So dropout regularises here as it does on track crops.
    """
    predicted = predicted.float()
    measured = measured.to(predicted)
    zp = (predicted - predicted.mean()) / torch.sqrt(predicted.var(unbiased=False) + eps)
    zm = (measured - measured.mean()) / torch.sqrt(measured.var(unbiased=False) + eps)
    return 0.5 * torch.mean((zp - zm) ** 2)
