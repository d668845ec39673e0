"""The scoring loop: variants -> batches of REF / ALT windows -> scores, and its two front ends.

- :func:`score_batches`: a stream of variants -> ``(variants, scores)`` per batch, with
  bounded memory; unscorable alleles go to a callback.
- :func:`score_variants`: a DataFrame of variants -> AnnData of scores (like gReLU's
  ``predict_variant_effects``).
- :func:`score_vcf`: VCF -> scores file (``.tsv``, ``.vcf.gz`` + ``.tbi``, ``.h5ad``), streamed in
  batches with bounded memory, written to a temporary name and renamed only when complete.
- :func:`countable` / :func:`count_alleles`: the allele count shown by the progress bar.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from genocl_plugin.data import reference
from genocl_plugin.errors import input_error
from genocl_plugin.progress import Progress, stage
from genocl_plugin.scoring.forward import compare, predict_track_outputs, predict_window_sums, prepare_model
from genocl_plugin.scoring.plan import SCORES, ScoringPlan, bins_at, column_names, scoring_plan
from genocl_plugin.scoring.vcf import Variant, VariantWarning, parse_shard, read_header, read_variants
from genocl_plugin.scoring.windows import (
    SKIP_REASONS,
    allele_problem,
    contig_aliases,
    genome_reader,
    variant_windows,
)
from genocl_plugin.scoring.writers import _open_sink, _skipped_sink, output_kind


def score_batches(variants: Iterable[Variant], model, fasta, plan: ScoringPlan, rc: bool = False,
                  batch_size: int = 64, devices: str | int | None = "cpu",
                  allow_ref_mismatch: bool = False,
                  on_skip: Callable[[Variant, str, str], None] | None = None,
                  fasta_path: object = "--fasta") -> Iterator[tuple[list[Variant], np.ndarray]]:
    """Score a stream of variants in batches: yields ``(variants, scores)`` per batch.

    Only one batch of sequences is in memory at a time. Alleles that cannot be scored go to
    ``on_skip(variant, reason, detail)`` and are not yielded. REF alleles that disagree with
    the FASTA are skipped (reason ``ref_mismatch``) unless ``allow_ref_mismatch``, in which
    case they are scored and still reported to ``on_skip`` with reason
    ``ref_mismatch_scored``.

    Raises
    ------
    GenoclInputError
        A VCF contig absent from the FASTA (``chr1`` / ``1`` spellings are matched).
    """
    forward, device = prepare_model(model, devices)
    aliases = contig_aliases(fasta.keys())
    fetch = genome_reader(fasta)
    max_len = plan.seq_len // 2
    on_skip = on_skip or (lambda *_: None)
    batch: list[Variant] = []
    windows: list[np.ndarray] = []  # distinct input sequences of the batch
    index: dict[tuple, int] = {}  # (contig, pos, ref[, alt]) -> row of windows
    pairs: list[tuple[int, int]] = []  # (REF row, ALT row) of each batched allele
    bins: list[tuple[int, int]] = []  # output positions each allele is read from
    shared: dict = {}  # --share-windows: the current shared window (contig, start, codes)

    def row(key: tuple, window: np.ndarray) -> int:
        # Alleles of one site share the REF window, and a site scored for several elements or
        # samples repeats its ALT window: each distinct sequence is predicted once per batch.
        if key not in index:
            index[key] = len(windows)
            windows.append(window)
        return index[key]

    def flush() -> np.ndarray:
        ref_rows, alt_rows = (list(x) for x in zip(*pairs, strict=True))
        if plan.share_margin is None:
            sums = predict_window_sums(forward, np.stack(windows), plan, rc=rc, device=device,
                                       batch_size=batch_size)
            return compare(sums[ref_rows], sums[alt_rows], plan)
        # shared windows: one REF pass serves every allele in it, each read at its own bins
        outputs = predict_track_outputs(forward, np.stack(windows), plan, rc=rc, device=device,
                                        batch_size=batch_size)
        ref_sums = np.stack([outputs[r, :, lo:hi].sum(-1) for r, (lo, hi) in zip(ref_rows, bins, strict=True)])
        alt_sums = np.stack([outputs[r, :, lo:hi].sum(-1) for r, (lo, hi) in zip(alt_rows, bins, strict=True)])
        return compare(ref_sums, alt_sums, plan)

    def shared_pair(contig: str, variant: Variant) -> tuple[int, int, tuple[int, int]] | None:
        """The allele's (REF row, ALT row, bins) in a shared window, or None (score it centred):
        only same-length alleles whose REF agrees with the genome share a window."""
        if plan.share_margin is None or len(variant.ref) != len(variant.alt):
            return None
        first = variant.pos - 1  # 0-based first REF base
        margin, seq_len = plan.share_margin, plan.seq_len
        if (shared.get("contig") != contig or first < shared["start"] + margin
                or first + len(variant.ref) > shared["start"] + seq_len - margin):
            # a new window with this allele at the left edge of its usable centre: a sorted VCF
            # fills it with the alleles that follow
            start = first - margin
            shared.update(contig=contig, start=start, codes=fetch(contig, start, start + seq_len))
        codes, k = shared["codes"], first - shared["start"]
        if reference.codes_to_seq(codes[k : k + len(variant.ref)]) != variant.ref or "N" in variant.ref:
            return None  # the centred path reports (or, with allow_ref_mismatch, scores) the mismatch
        alt = codes.copy()
        alt[k : k + len(variant.alt)] = reference.seq_to_codes(variant.alt)
        key = ("shared", contig, shared["start"])
        span = bins_at(plan.n_out, plan.bin_size, plan.offset, plan.window, k)
        return row(key, codes), row((*key, first, variant.alt), alt), span

    for variant in variants:
        problem = allele_problem(variant.ref, variant.alt, max_len)
        if problem:
            on_skip(variant, problem, f"{variant.ref}>{variant.alt}")
            continue
        contig = aliases.get(variant.chrom)
        if contig is None:
            shown = ", ".join(list(fasta.keys())[:5])
            raise input_error(fasta_path, "contig", f"VCF contig {variant.chrom!r} is not in the FASTA "
                              f"(it has {shown})", "use the FASTA of the VCF's assembly, or "
                              "restrict the VCF with --region")
        in_shared = shared_pair(contig, variant)
        if in_shared is not None:
            pairs.append(in_shared[:2])
            bins.append(in_shared[2])
        else:
            ref_window, alt_window, genome_ref = variant_windows(
                contig, variant.pos, variant.ref, variant.alt, fetch, plan.seq_len)
            if genome_ref != variant.ref or "N" in genome_ref:  # docs/scoring.md: a FASTA N is a mismatch
                detail = f"VCF REF {variant.ref}, FASTA {contig}:{variant.pos} has {genome_ref}"
                if not allow_ref_mismatch:
                    on_skip(variant, "ref_mismatch", detail)
                    continue
                on_skip(variant, "ref_mismatch_scored", detail)
            key = (contig, variant.pos, variant.ref)
            pairs.append((row(key, ref_window), row((*key, variant.alt), alt_window)))
            bins.append(plan.bins)
        batch.append(variant)
        if len(batch) >= batch_size:
            yield batch, flush()
            batch = []  # a new list: the yielded one belongs to the caller now
            windows.clear()
            pairs.clear()
            bins.clear()
            index.clear()
    if batch:
        yield batch, flush()


def score_variants(variants: pd.DataFrame, model, fasta: str | os.PathLike,
                   tracks: Iterable[str | int] | None = None, window: int | None = None,
                   aggregate: bool = False, rc: bool = False, batch_size: int = 64,
                   devices: str | int | None = "cpu", allow_ref_mismatch: bool = False,
                   share_windows: bool = False):
    """Score a table of variants in memory (the analogue of gReLU's ``predict_variant_effects``).

    Parameters
    ----------
    variants
        Columns ``chrom``, ``pos`` (1-based), ``ref``, ``alt`` (one allele per row).
    model
        A loaded genocl / gReLU model.
    fasta
        Genome FASTA (plain or bgzip; the index is built if missing).
    tracks, window, aggregate, rc, batch_size, devices, allow_ref_mismatch, share_windows
        As in :func:`score_vcf`.

    Returns
    -------
    anndata.AnnData
        ``obs`` = the scored variants, ``var`` = tracks, ``X`` = ``diff``,
        ``layers["log2fc"]``; ``uns["skipped"]`` lists the rows not scored and why.
    """
    import anndata

    plan = scoring_plan(model, tracks, window, aggregate, share_windows=share_windows)
    genome = reference.open_fasta(fasta)
    rows = [Variant(str(r.chrom), int(r.pos), str(getattr(r, "id", ".")), str(r.ref).upper(),
                    str(r.alt).upper(), record=i) for i, r in enumerate(variants.itertuples())]
    skipped: list[tuple[int, str, str]] = []
    kept, chunks = [], []
    for batch, scores in score_batches(rows, model, genome, plan, rc=rc, batch_size=batch_size,
                                       devices=devices, allow_ref_mismatch=allow_ref_mismatch,
                                       on_skip=lambda v, r, d: skipped.append((v.record, r, d)),
                                       fasta_path=fasta):
        kept += [v.record for v in batch]
        chunks.append(scores)
    n_labels = len(plan.labels)
    matrix = np.concatenate(chunks) if chunks else np.zeros((0, n_labels * len(plan.scores)))
    obs = variants.iloc[kept].reset_index(drop=True)
    obs.index = obs.index.astype(str)
    var = pd.DataFrame(index=pd.Index(plan.labels, name="name"))
    return anndata.AnnData(
        X=matrix[:, :n_labels].astype(np.float32), obs=obs, var=var,
        layers={"log2fc": matrix[:, n_labels : 2 * n_labels].astype(np.float32)},
        uns={"skipped": pd.DataFrame(skipped, columns=["row", "reason", "detail"])},
    )


def score_vcf(vcf: str | os.PathLike, model, fasta: str | os.PathLike, out: str | os.PathLike,
              tracks: Iterable[str | int] | None = None, window: int | None = None,
              aggregate: bool = False, scores: Iterable[str] = SCORES, rc: bool = False,
              batch_size: int = 64, devices: str | int | None = "cpu", region: str | None = None,
              shard: str | tuple[int, int] | None = None, allow_ref_mismatch: bool = False,
              model_name: str = "model", force: bool = False, progress: bool = False,
              command: str | None = None, share_windows: bool = False) -> dict:
    """Score every ALT allele of a VCF and write the scores, streaming in batches.

    Parameters
    ----------
    vcf
        ``.vcf``, ``.vcf.gz`` or ``.bcf``.
    model
        A loaded model (:func:`genocl_plugin.models.load_model`).
    fasta
        Genome FASTA of the VCF's assembly.
    out
        ``.tsv`` (kipoi-veff2 columns ``#CHROM POS ID REF ALT <model>/<track>/<score>``),
        ``.vcf.gz`` (bgzipped, tabix-indexed when sorted; scores in INFO) or ``.h5ad``.
        Written to a temporary name and renamed when complete.
    tracks
        Track indices, names or patterns (default: all tracks).
    window
        bp of output centred on the variant to sum the signal over (default: all output).
    aggregate
        Sum the selected tracks into one score column per score.
    scores
        Any of ``diff`` and ``log2fc``.
    rc
        Average both strands.
    batch_size
        Variants per batch, and sequences per forward pass.
    devices
        ``cpu``, ``cuda`` or GPU indices (``0,1``).
    region
        Only this region (``chr1:1-1000000``).
    shard
        ``"i/n"``: only the i-th of n interleaved record subsets.
    allow_ref_mismatch
        Score variants whose REF disagrees with the FASTA instead of skipping them.
    share_windows
        Score same-length alleles (SNVs, MNVs) whose REF agrees with the FASTA in input windows
        shared with their neighbours: one REF pass per window, one ALT pass per allele, each read
        at the ``window`` bp around it (needs ``window``; docs/scoring.md says how far the
        scores agree with centred ones). Indels and the rest are scored centred.
    model_name
        Model name in column / INFO names.
    force
        Replace existing outputs.
    progress
        Show progress on stderr: a bar with variants/s and ETA on a terminal, else a line every
        ``GENOCL_PROGRESS_INTERVAL`` seconds (default 30; :mod:`genocl_plugin.progress`). The
        counting and scoring stages are printed either way.
    command
        The command line, recorded in the output VCF header.

    Returns
    -------
    dict
        Counts (``records``, ``alleles``, ``scored``, ``skipped`` by reason), ``seconds``,
        ``variants_per_s``, ``mismatch_examples``, ``skipped_file``, ``indexed``.
    """
    out = Path(out)
    kind = output_kind(out)
    shard_t = parse_shard(shard) if isinstance(shard, str) else shard
    if batch_size < 1:
        raise input_error(batch_size, "--batch-size", "must be at least 1", "e.g. --batch-size 64")
    plan = scoring_plan(model, tracks, window, aggregate, scores, share_windows=share_windows)
    header = read_header(vcf)
    genome = reference.open_fasta(fasta)
    columns = column_names(plan, model_name)
    summary = {"out": str(out), "records": 0, "alleles": 0, "scored": 0,
               "skipped": dict.fromkeys(SKIP_REASONS, 0), "mismatch_examples": [],
               "ref_mismatch_scored": 0}
    last_record = [-1]

    def counted(stream):
        for variant in stream:
            summary["alleles"] += 1
            if variant.record != last_record[0]:
                last_record[0] = variant.record
                summary["records"] += 1
            yield variant

    total = None
    if countable(vcf):  # the alleles to score, for the progress' percentage and ETA
        with stage("counting variants", f"{Path(vcf).name}") as counting:
            total = count_alleles(vcf, region=region, shard=shard_t)
            counting.note = f"{total:,} alleles"
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stack.enter_context(stage("scoring", (f"{total:,} alleles" if total is not None else "alleles")
                                  + f" of {Path(vcf).name} in batches of {batch_size}"))
        write_skip = stack.enter_context(_skipped_sink(out, force))

        def on_skip(variant, reason, detail):
            if reason.startswith("ref_mismatch") and len(summary["mismatch_examples"]) < 5:
                summary["mismatch_examples"].append(
                    f"{variant.chrom}:{variant.pos} {variant.ref}>{variant.alt} ({detail})")
            if reason == "ref_mismatch_scored":
                summary["ref_mismatch_scored"] += 1
            else:
                summary["skipped"][reason] += 1
            write_skip(variant, reason, detail)

        write = stack.enter_context(_open_sink(kind, out, force, columns=columns, plan=plan,
                                               header=header, model_name=model_name,
                                               command=command, summary=summary))
        bar = stack.enter_context(Progress(total, f"scoring {Path(vcf).name}", "variant", enabled=progress))
        stream = counted(read_variants(vcf, region=region, shard=shard_t))
        for batch, batch_scores in score_batches(stream, model, genome, plan, rc=rc,
                                                 batch_size=batch_size, devices=devices,
                                                 allow_ref_mismatch=allow_ref_mismatch,
                                                 on_skip=on_skip, fasta_path=fasta):
            write(batch, batch_scores)
            summary["scored"] += len(batch)
            bar.update(summary["alleles"])  # read so far: scored or skipped
    seconds = time.perf_counter() - start
    summary["seconds"] = seconds
    summary["variants_per_s"] = summary["scored"] / seconds if seconds > 0 else float("nan")
    summary["skipped_total"] = sum(summary["skipped"].values())
    return summary


# Files up to this size are read once before scoring to count their alleles (the progress'
# total and ETA): ~0.4 s per 200,000 plain-text records, nothing next to scoring them.
COUNT_MAX_BYTES = 1 << 30


def countable(vcf: str | os.PathLike) -> bool:
    """Whether :func:`score_vcf` counts the file's alleles first (a file of at most ``COUNT_MAX_BYTES``)."""
    try:
        return Path(vcf).stat().st_size <= COUNT_MAX_BYTES
    except OSError:
        return False


def count_alleles(vcf: str | os.PathLike, region: str | None = None,
                  shard: tuple[int, int] | None = None) -> int:
    """The number of ALT alleles :func:`read_variants` yields (warnings are left to the scoring pass)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VariantWarning)
        return sum(1 for _ in read_variants(vcf, region=region, shard=shard))
