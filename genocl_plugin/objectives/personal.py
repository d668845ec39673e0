"""Personal genomes (``assay="personal"``): individuals' haplotypes around a gene's TSS, their
predicted expression, Variformer's pairwise loss and the gene-grouped batch sampler.

A row is one individual x one gene. Its predicted expression is the log2 of the readout
signal (CAGE tracks; ProCapNet: both strands) in the bins at the gene's TSS, summed over the
individual's two haplotype sequences (the reference window with that haplotype's SNVs).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from genocl_plugin.data import reference
from genocl_plugin.errors import input_error
from genocl_plugin.objectives.readout import LN2, _output_window, activity, readout_mask, readout_tracks


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
