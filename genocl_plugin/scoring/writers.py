"""The output files of ``score-vcf``: the kind from the file name, and one sink per kind.

A sink is a context manager yielding ``write(variants, scores)``; each writes to a temporary
name and renames it only when complete (:func:`genocl_plugin.data.fileio.atomic_path`).

- ``.tsv`` / ``.tsv.gz``: kipoi-veff2's table, ``#CHROM POS ID REF ALT <model>/<track>/<score>``.
- ``.vcf`` / ``.vcf.gz``: sites-only VCF with the scores in INFO (:func:`info_ids`), bgzipped and
  tabix-indexed when sorted.
- ``.h5ad``: AnnData written incrementally with h5py.
- ``<out>.skipped.tsv``: the alleles not scored, and why.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from genocl_plugin.data.fileio import atomic_path, clean_stale, crash_point
from genocl_plugin.errors import input_error
from genocl_plugin.scoring.plan import ScoringPlan
from genocl_plugin.scoring.vcf import VCF_COLUMNS, Variant

OUTPUT_SUFFIXES = (".tsv", ".tsv.gz", ".vcf", ".vcf.gz", ".vcf.bgz", ".h5ad")


def output_kind(out: str | os.PathLike) -> str:
    """``tsv``, ``vcf`` or ``h5ad`` from the output file name."""
    name = str(out).lower()
    for suffix, kind in ((".tsv", "tsv"), (".tsv.gz", "tsv"), (".vcf", "vcf"), (".vcf.gz", "vcf"),
                         (".vcf.bgz", "vcf"), (".h5ad", "h5ad")):
        if name.endswith(suffix):
            return kind
    raise input_error(out, "--out", "unknown output format",
                      "name it scores.tsv, scores.vcf.gz or scores.h5ad")


def _fmt(value: float) -> str:
    return f"{value:.7g}"


def _open_sink(kind: str, out: Path, force: bool, **kwargs):
    if kind == "tsv":
        return _tsv_sink(out, force, kwargs["columns"])
    if kind == "vcf":
        return _vcf_sink(out, force, kwargs["header"], kwargs["plan"], kwargs["model_name"],
                         kwargs["command"], kwargs["summary"])
    return _h5ad_sink(out, force, kwargs["plan"], kwargs["model_name"])


@contextlib.contextmanager
def _tsv_sink(out: Path, force: bool, columns: list[str]):
    """kipoi-veff2's table: ``#CHROM POS ID REF ALT <model>/<track>/<score>...``."""
    with atomic_path(out, force=force) as tmp:
        opener = gzip.open if str(out).endswith(".gz") else open
        with opener(tmp, "wt") as handle:
            handle.write("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", *columns]) + "\n")

            def write(batch: list[Variant], scores: np.ndarray) -> None:
                lines = [
                    "\t".join([v.chrom, str(v.pos), v.id, v.ref, v.alt, *map(_fmt, row)])
                    for v, row in zip(batch, scores.tolist(), strict=True)
                ]
                handle.write("\n".join(lines) + "\n")

            yield write


def info_ids(plan: ScoringPlan, model_name: str) -> list[tuple[str, str]]:
    """INFO IDs and descriptions of the score columns (score-major, like the TSV columns).

    IDs are ``<model>_<score>_<track index>`` (``<model>_<score>`` when aggregated): VCF INFO
    keys cannot hold the spaces and brackets of track names, so the names go in Description.
    """
    prefix = re.sub(r"[^0-9A-Za-z_.]", "_", model_name)
    prefix = prefix if re.match(r"[A-Za-z_]", prefix) else f"_{prefix}"
    window = f"output positions {plan.bins[0]}-{plan.bins[1]} of {plan.n_out}"
    ids = []
    for score in plan.scores:
        what = "alt - ref" if score == "diff" else "log2(alt / ref)"
        if plan.aggregate:
            ids.append((f"{prefix}_{score}", f"genocl {model_name} {what} of the summed signal "
                        f"of tracks {_short_list(plan.tracks)} over {window}"))
            continue
        for index, label in zip(plan.tracks, plan.labels, strict=True):
            ids.append((f"{prefix}_{score}_{index}", f"genocl {model_name} {what} of track "
                        f"{index} '{label}' summed over {window}"))
    return [(key, desc.replace('"', "'")) for key, desc in ids]


def _short_list(values: list[int]) -> str:
    text = ",".join(map(str, values[:10]))
    return text + (",..." if len(values) > 10 else "")


@contextlib.contextmanager
def _vcf_sink(out: Path, force: bool, header: list[str], plan: ScoringPlan, model_name: str,
              command: str | None, summary: dict):
    """Sites-only VCF, one record per scored ALT, scores appended to INFO; bgzip + tabix."""
    from pysam.libcbgzf import BGZFile

    ids = info_ids(plan, model_name)
    ours = {key for key, _ in ids}
    meta = [line for line in header[:-1]
            if not (line.startswith("##INFO=<ID=") and line[11:].split(",")[0] in ours)]
    meta += [f'##INFO=<ID={key},Number=1,Type=Float,Description="{desc}">' for key, desc in ids]
    if command:
        meta.append(f"##genoclCommand={command}")
    compressed = not str(out).endswith(".vcf")
    order: dict[str, int] = {}
    state = {"last": ("", 0), "sorted": True, "max_pos": 0}
    new_index = None
    with atomic_path(out, force=force) as tmp:
        handle = BGZFile(str(tmp), "wb") if compressed else open(tmp, "wb")  # noqa: SIM115
        try:
            handle.write(("\n".join(meta + ["\t".join(VCF_COLUMNS)]) + "\n").encode())

            def write(batch: list[Variant], scores: np.ndarray) -> None:
                lines = []
                for v, row in zip(batch, scores.tolist(), strict=True):
                    _track_order(v, order, state)
                    ours_info = ";".join(f"{key}={_fmt(x) if math.isfinite(x) else '.'}"
                                         for (key, _), x in zip(ids, row, strict=True))
                    info = ours_info if v.info == "." else f"{v.info};{ours_info}"
                    lines.append("\t".join([v.chrom, str(v.pos), v.id, v.ref, v.alt, v.qual,
                                            v.filter, info]))
                handle.write(("\n".join(lines) + "\n").encode())

            yield write
        finally:
            handle.close()
        summary["indexed"] = False
        if compressed and state["sorted"]:
            import pysam

            index = Path(f"{out}.tbi")
            csi = state["max_pos"] >= 2**29  # .tbi cannot index past 512 Mb
            pysam.tabix_index(str(tmp), preset="vcf", force=True, csi=csi,
                              index=str(tmp) + (".csi" if csi else ".tbi"))
            new_index = (Path(str(tmp) + (".csi" if csi else ".tbi")), index.with_suffix(".csi") if csi else index)
            summary["indexed"] = True
        elif compressed:
            summary["unsorted"] = True
        # The data and its index are replaced as a pair: the old index goes first, then the data
        # is renamed over the old data, then the new index lands. At no instant does an index sit
        # beside data it does not describe (between the steps there is simply no index).
        for stale in (Path(f"{out}.tbi"), Path(f"{out}.csi")):
            if stale.exists():
                stale.unlink()
        crash_point("score-vcf:index-removed")
    if new_index is not None:
        crash_point("score-vcf:data-replaced")
        os.replace(*new_index)


def _track_order(variant: Variant, order: dict[str, int], state: dict) -> None:
    """Note whether records arrive sorted (tabix needs contiguous contigs, rising POS)."""
    last_chrom, last_pos = state["last"]
    if variant.chrom != last_chrom:
        if variant.chrom in order:
            state["sorted"] = False
        order[variant.chrom] = len(order)
    elif variant.pos < last_pos:
        state["sorted"] = False
    state["last"] = (variant.chrom, variant.pos)
    state["max_pos"] = max(state["max_pos"], variant.pos)


@contextlib.contextmanager
def _h5ad_sink(out: Path, force: bool, plan: ScoringPlan, model_name: str):
    """AnnData written incrementally with h5py (rows appended per batch, never all in memory).

    ``X`` is the first requested score, ``layers[score]`` every score; ``obs`` the variants,
    ``var`` the tracks. The layout is anndata's on-disk format (read with ``anndata.read_h5ad``).
    """
    import anndata
    import h5py

    n_labels = len(plan.labels)
    text = h5py.string_dtype("utf-8")
    with atomic_path(out, force=force) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        matrices = {}
        for name in ("X", *(f"layers/{s}" for s in plan.scores)):
            matrices[name] = h5.create_dataset(name, shape=(0, n_labels), maxshape=(None, n_labels),
                                               dtype="float32", chunks=(1024, n_labels))
            matrices[name].attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        h5["layers"].attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})
        obs = h5.create_group("obs")
        obs_cols = {"_index": text, "chrom": text, "pos": "int64", "id": text, "ref": text,
                    "alt": text}
        for col, dtype in obs_cols.items():
            obs.create_dataset(col, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(4096,))
            kind = "array" if dtype == "int64" else "string-array"
            obs[col].attrs.update({"encoding-type": kind, "encoding-version": "0.2.0"})
        obs.attrs.update({"encoding-type": "dataframe", "encoding-version": "0.2.0",
                          "_index": "_index", "column-order": ["chrom", "pos", "id", "ref", "alt"]})
        n = [0]

        def write(batch: list[Variant], scores: np.ndarray) -> None:
            lo, hi = n[0], n[0] + len(batch)
            for dataset in (*matrices.values(), *(obs[c] for c in obs_cols)):
                dataset.resize(hi, axis=0)
            for i, score in enumerate(plan.scores):
                block = scores[:, i * n_labels : (i + 1) * n_labels].astype(np.float32)
                matrices[f"layers/{score}"][lo:hi] = block
                if i == 0:
                    matrices["X"][lo:hi] = block
            obs["_index"][lo:hi] = [str(i) for i in range(lo, hi)]
            obs["pos"][lo:hi] = [v.pos for v in batch]
            for col in ("chrom", "id", "ref", "alt"):
                obs[col][lo:hi] = [getattr(v, col) for v in batch]
            n[0] = hi

        yield write
        var = pd.DataFrame({"track_index": plan.tracks if not plan.aggregate else [-1]},
                           index=pd.Index(plan.labels, dtype=str))
        uns = {"genocl": {"model": model_name, "scores": list(plan.scores),
                          "window_bins": list(plan.bins), "tracks": list(plan.tracks),
                          "aggregate": bool(plan.aggregate), "X": plan.scores[0]}}
        for key, value in (("var", var), ("uns", uns), ("obsm", {}), ("varm", {}),
                           ("obsp", {}), ("varp", {})):
            anndata.io.write_elem(h5, key, value)


@contextlib.contextmanager
def _skipped_sink(out: Path, force: bool):
    """``<out>.skipped.tsv``: every allele not scored (or scored despite a REF mismatch).

    Written to a temporary file; kept only if something was skipped. A stale report of an
    earlier run is removed when ``force`` replaces the output.
    """
    final = out.with_name(out.name + ".skipped.tsv")
    if final.exists() and not force:
        raise input_error(final, "output", "already exists", "choose another --out or pass --force")
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final)  # a killed run's temporary report (the CLI holds the claim on --out)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    count = [0]
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write("#CHROM\tPOS\tID\tREF\tALT\treason\tdetail\n")

            def write(variant: Variant, reason: str, detail: str) -> None:
                count[0] += 1
                handle.write(f"{variant.chrom}\t{variant.pos}\t{variant.id}\t{variant.ref}\t"
                             f"{variant.alt}\t{reason}\t{detail}\n")

            yield write
        if count[0]:
            os.replace(tmp, final)
        elif final.exists():
            final.unlink()
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
