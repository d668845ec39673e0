"""Benchmark ``genocl score-vcf``: speed, memory, and agreement with measured effects.

Sections (all run by default; ``--only speed,rss,kircher`` picks some):

``speed``
    Variants/s on the bundled minis (``enformer``, ``procapnet``) of (a) genocl's
    :func:`genocl_plugin.scoring.variants.score_vcf` end to end (read VCF, fetch, predict, write TSV),
    (b) gReLU 1.1.0 ``predict_variant_effects`` on the same model, variants, FASTA and batch
    size (plus reading the VCF into its DataFrame; it has no VCF reader), and (c) the ceiling:
    the raw model forward on pre-encoded REF + ALT one-hot batches. Targets: (a) >= 1.5x (b),
    (a) >= 90% of (c). The scores of (a) and (b) are also compared.
``rss``
    Peak RSS (VmHWM, polled) of the ``genocl score-vcf`` CLI on 10k vs 1M variants
    (target: flat within 100 MB), with a tiny model so the 1M run takes minutes: memory is
    what is measured here; the forward pass of a bigger model adds time, not memory.
``kircher``
    Spearman of predicted vs measured (Kircher et al. 2019, INFO COEF) effects per element,
    for the base and updated models. The hg38 sequence around the elements is not available
    offline, so a FASTA at real GRCh38 coordinates is built from the element sequences with N
    everywhere else: models see each element alone, in N context.

The ``speed`` and ``rss`` VCFs use synthetic positions with real alleles: positions drawn
uniformly from the non-N bases of hg38 chr2:1-2,333,275, REF read from that FASTA, ALT drawn
from the REF->ALT frequencies of the 9,212 real dbSNP SNVs in kipoiseq's chr22 VCF.

Example::

    python benchmarks/score_vcf.py                        # all sections, ~10 min on 2 CPU cores
    python benchmarks/score_vcf.py --only kircher --updated enformer=runs/enf-mpra \\
        --updated procapnet=runs/pcn-mpra --kircher-sites-per-element 0
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

CHR2 = "genome/chr2_1-2333275.fa.gz"
ALLELES_VCF = "vcf/kipoiseq_chr22_ENST00000319363.vcf.gz"
KIRCHER_VCF = "kircher2019_satmut/DERIVED_satmut_GRCh38.vcf.gz"
KIRCHER_FA = "kircher2019_satmut/DERIVED_element_reference_sequences_GRCh38.fa"
# real dense variants: the GEUVADIS chr2 records on hg38 (REF agrees with CHR2 at 15,267 of 15,269 sites)
GEUVADIS_VCF = "personal/geuvadis_5indiv_chr2/test1.vcf.gz"
# bp read around each variant by the dense section (centred and shared-window scoring alike)
DENSE_WINDOW = {"enformer": 256, "procapnet": 200}
HEADER = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
# What each architecture's effect on MPRA expression is read from: the summed CAGE signal
# (transcription initiation) for Enformer, both strands of the ProCapNet profile.
KIRCHER_TRACKS = {"enformer": ["CAGE:*"], "procapnet": None}


# --------------------------------------------------------------------------- inputs


def real_snv_alleles(shared: Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """P(ALT | REF) of the real SNVs in kipoiseq's chr22 VCF."""
    import gzip

    counts: Counter = Counter()
    with gzip.open(shared / ALLELES_VCF, "rt") as handle:
        for line in handle:
            if not line.startswith("#"):
                ref, alts = line.split("\t")[3:5]
                counts.update((ref, alt) for alt in alts.split(",") if len(ref) == len(alt) == 1)
    out = {}
    for ref in "ACGT":
        alts = [a for a in "ACGT" if a != ref]
        weights = np.array([counts[(ref, a)] for a in alts], dtype=float)
        out[ref] = (alts, weights / weights.sum())
    return out


def synthetic_vcf(path: Path, n: int, shared: Path, seed: int = 0) -> Path:
    """``n`` SNVs at distinct random non-N positions of hg38 chr2:1-2,333,275 (bgzipped, sorted)."""
    from pysam.libcbgzf import BGZFile

    from genocl_plugin.data import reference

    if path.exists():
        return path
    fasta = reference.open_fasta(shared / CHR2)
    seq = np.frombuffer(fasta["chr2"][:].encode(), dtype=np.uint8)
    usable = np.flatnonzero(np.isin(seq, np.frombuffer(b"ACGT", dtype=np.uint8)))
    usable = usable[(usable > 2_000) & (usable < len(seq) - 2_000)]
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.choice(usable, size=n, replace=False))
    alleles = real_snv_alleles(shared)
    refs = seq[positions].tobytes().decode()
    draws = rng.random(n)
    tmp = path.with_suffix(".tmp")
    with BGZFile(str(tmp), "wb") as handle:
        handle.write(HEADER.encode())
        for start in range(0, n, 100_000):
            lines = []
            for pos, ref, u in zip(positions[start : start + 100_000], refs[start : start + 100_000],
                                   draws[start : start + 100_000], strict=True):
                alts, p = alleles[ref]
                alt = alts[int(np.searchsorted(np.cumsum(p), u))] if u < 1 else alts[-1]
                lines.append(f"chr2\t{pos + 1}\tv{pos + 1}\t{ref}\t{alt}\t.\t.\t.\n")
            handle.write("".join(lines).encode())
    os.replace(tmp, path)
    return path


def plain_fasta(work: Path, shared: Path) -> Path:
    """chr2 piece as plain FASTA with .fai and .sizes (what gReLU's genome reader needs)."""
    import gzip
    import shutil

    from genocl_plugin.data import reference

    path = work / "chr2_1-2333275.fa"
    if not path.exists():
        with gzip.open(shared / CHR2, "rt") as src, open(path, "w") as dst:
            shutil.copyfileobj(src, dst)
    fasta = reference.open_fasta(path)
    Path(f"{path}.sizes").write_text("".join(f"{k}\t{len(fasta[k])}\n" for k in fasta.keys()))
    return path


# --------------------------------------------------------------------------- speed


def speed(archs: list[str], n: int, kircher_n_sites: int, batch_size: int, repeats: int, work: Path,
          shared: Path) -> list[dict]:
    """Rows for synthetic SNVs (1 ALT per site) and real Kircher sites (all ALTs, all experiments)."""
    datasets = [("synthetic SNVs, 1 ALT/site", synthetic_vcf(work / f"speed_{n}.vcf.gz", n, shared),
                 plain_fasta(work, shared))]
    if kircher_n_sites:
        fasta = kircher_fasta(work, shared)
        sizes = Path(f"{fasta}.sizes")  # gReLU's genome reader wants it beside the FASTA
        sizes.write_text("".join("\t".join(x.split("\t")[:2]) + "\n"
                                 for x in Path(f"{fasta}.fai").read_text().splitlines()))
        datasets.append(("Kircher MPRA SNVs, all ALTs/experiments per site",
                         kircher_sites(work, shared, kircher_n_sites), fasta))
    rows = []
    for arch in archs:
        for label, vcf, fasta in datasets:
            rows.append({"data": label, **speed_one(arch, vcf, fasta, batch_size, repeats, work)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def speed_one(arch: str, vcf: Path, fasta: Path, batch_size: int, repeats: int, work: Path) -> dict:
    """genocl vs gReLU vs raw forward on one bundled model (model loading not timed)."""
    from genocl_plugin.models import load_model
    from genocl_plugin.scoring import variants

    model = load_model(arch)
    plan = variants.scoring_plan(model)
    out = work / f"speed_{arch}.tsv"

    def run_genocl():
        variants.score_vcf(vcf, model, fasta, out, batch_size=batch_size, force=True)

    run_grelu = grelu_runner(vcf, model, fasta, batch_size)
    alleles, run_forward = forward_runner(vcf, model, fasta, batch_size)
    n = len(alleles)

    times = {name: best_time(fn, repeats) for name, fn in
             (("genocl", run_genocl), ("grelu", run_grelu), ("forward", run_forward))}
    theirs = pd.DataFrame(run_grelu()[..., 0], index=[v.id for v in alleles])
    ours = pd.read_csv(out, sep="\t").set_index("ID").iloc[:, 4 : 4 + len(plan.tracks)]
    theirs = theirs.loc[ours.index].to_numpy()  # rows genocl skipped (REF = N) are not compared
    ours = ours.to_numpy()
    rate = {k: n / t for k, t in times.items()}
    sites = len({(v.chrom, v.pos) for v in alleles})
    return {
        "model": f"{arch}-mini", "seq_len": model.seq_len, "tracks": len(plan.tracks),
        "variants": n, "sites": sites, "batch_size": batch_size,
        "genocl_vps": rate["genocl"], "grelu_vps": rate["grelu"], "forward_vps": rate["forward"],
        "vs_grelu": rate["genocl"] / rate["grelu"], "of_ceiling": rate["genocl"] / rate["forward"],
        "max_abs_diff_vs_grelu": float(np.abs(ours - theirs).max()),
        "max_abs_score": float(np.abs(theirs).max()),
    }


def grelu_runner(vcf: Path, model, fasta: Path, batch_size: int):
    """gReLU's ``predict_variant_effects`` on the VCF, summed over all output positions."""
    from grelu.transforms.prediction_transforms import Aggregate
    from grelu.variant import predict_variant_effects

    def run_grelu():
        df = pd.read_csv(vcf, sep="\t", comment="#", header=None, usecols=[0, 1, 3, 4],
                         names=["chrom", "pos", "ref", "alt"])
        return predict_variant_effects(
            df, model, genome=str(fasta), compare_func="subtract", return_ad=False,
            batch_size=batch_size, devices="cpu", prediction_transform=Aggregate(length_aggfunc="sum"))

    return run_grelu


def forward_runner(vcf: Path, model, fasta: Path, batch_size: int):
    """The ceiling: the VCF's alleles and a function running nothing but ``model(x)`` on their REF +
    ALT one-hot, already in memory."""
    import torch

    from genocl_plugin.data import reference
    from genocl_plugin.scoring import variants

    genome = reference.open_fasta(fasta)
    alleles = list(variants.read_variants(vcf))
    codes = np.stack([w for v in alleles for w in variants.variant_windows(
        v.chrom, v.pos, v.ref, v.alt, genome, model.seq_len)[:2]])
    # contiguous, like a DataLoader-collated batch and like genocl's own one-hot
    x = torch.from_numpy(np.ascontiguousarray(reference.codes_to_one_hot(codes)))

    def run_forward():
        with torch.inference_mode():
            for start in range(0, len(x), batch_size):
                model(x[start : start + batch_size])

    return alleles, run_forward


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# --------------------------------------------------------------------------- dense


def geuvadis_snvs(path: Path, n: int, shared: Path) -> Path:
    """The first ``n`` one-ALT SNV records of the GEUVADIS chr2 VCF (hg38 part; contig named
    ``chr2`` like the FASTA), plain VCF."""
    import gzip

    lines = []
    with gzip.open(shared / GEUVADIS_VCF, "rt") as handle:
        for line in handle:
            fields = line.split("\t")
            if line.startswith("#") or fields[0] != "2" or len(fields[3]) != 1 or len(fields[4]) != 1:
                continue
            lines.append("\t".join(["chr2", fields[1], fields[2] if fields[2] != "." else f"g{fields[1]}",
                                    fields[3], fields[4], ".", ".", "."]) + "\n")
            if len(lines) >= n:
                break
    path.write_text(HEADER + "".join(lines))
    return path


def dense(archs: list[str], n: int, batch_size: int, repeats: int, work: Path, shared: Path) -> list[dict]:
    """A dense real VCF (GEUVADIS chr2, a variant every ~32 bp): genocl centred, genocl
    --share-windows, gReLU and the raw forward pass in one run, and how far the shared-window
    scores agree with the centred ones."""
    vcf = geuvadis_snvs(work / f"dense_{n}.vcf", n, shared)
    fasta = plain_fasta(work, shared)
    rows = []
    for arch in archs:
        rows.append({"data": f"GEUVADIS chr2, {n} real SNVs", **dense_one(arch, vcf, fasta, batch_size, repeats,
                                                                         work)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def dense_one(arch: str, vcf: Path, fasta: Path, batch_size: int, repeats: int, work: Path) -> dict:
    from genocl_plugin.models import load_model
    from genocl_plugin.scoring import variants

    model = load_model(arch)
    window = DENSE_WINDOW[arch]
    outs = {"centred": work / f"dense_{arch}_centred.tsv", "shared": work / f"dense_{arch}_shared.tsv"}

    def run(share: bool):
        variants.score_vcf(vcf, model, fasta, outs["shared" if share else "centred"], window=window,
                           aggregate=True, batch_size=batch_size, force=True, share_windows=share)

    run_grelu = grelu_runner(vcf, model, fasta, batch_size)
    alleles, run_forward = forward_runner(vcf, model, fasta, batch_size)

    times = {name: best_time(fn, repeats) for name, fn in
             (("centred", lambda: run(False)), ("shared", lambda: run(True)), ("grelu", run_grelu),
              ("forward", run_forward))}
    centred, shared = (pd.read_csv(outs[k], sep="\t").set_index("ID").iloc[:, 4].to_numpy() for k in ("centred",
                                                                                                       "shared"))
    n = len(alleles)
    rate = {k: n / t for k, t in times.items()}
    return {
        "model": f"{arch}-mini", "seq_len": model.seq_len, "window": window, "variants": n,
        "batch_size": batch_size, **{f"{k}_vps": v for k, v in rate.items()},
        "shared_vs_grelu": rate["shared"] / rate["grelu"], "centred_vs_grelu": rate["centred"] / rate["grelu"],
        "centred_of_ceiling": rate["centred"] / rate["forward"],
        "agreement_pearson": float(np.corrcoef(centred, shared)[0, 1]),
        "agreement_max_abs_diff": float(np.abs(centred - shared).max()),
        "max_abs_score": float(np.abs(centred).max()),
    }


def dense_markdown(rows: list[dict]) -> str:
    out = ["| model | data | window (bp) | genocl centred (variants/s) | genocl --share-windows | gReLU | raw forward "
           "| shared / gReLU | centred / raw forward | shared vs centred: Pearson | max abs diff (of max abs score) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['model']} | {r['data']} | {r['window']} | {r['centred_vps']:.3g} | {r['shared_vps']:.3g} | "
                   f"{r['grelu_vps']:.3g} | {r['forward_vps']:.3g} | {r['shared_vs_grelu']:.2f} | "
                   f"{r['centred_of_ceiling']:.2f} | {r['agreement_pearson']:.4f} | "
                   f"{r['agreement_max_abs_diff']:.3g} ({r['max_abs_score']:.3g}) |")
    return "\n".join(out)


# --------------------------------------------------------------------------- rss


def rss(sizes: list[int], work: Path, shared: Path, batch_size: int) -> list[dict]:
    import torch

    from genocl_plugin.models import build_model, save_model

    model_dir = work / "rss_tiny_model"
    if not model_dir.exists():
        torch.manual_seed(0)
        # tiny on purpose: memory does not depend on the model's cost, and a cheap forward
        # keeps the 1M-variant run to minutes
        save_model(build_model("procapnet", seq_len=64, task_names=["plus", "minus"],
                               model_params={"n_filters": 4, "n_layers": 1, "trimming": 8}),
                   model_dir)
    genocl = Path(sys.executable).parent / "genocl"
    rows = []
    for n in sizes:
        vcf = synthetic_vcf(work / f"rss_{n}.vcf.gz", n, shared, seed=1)
        out = work / f"rss_{n}.tsv"
        cmd = [str(genocl), "score-vcf", "--model", str(model_dir), "--vcf", str(vcf),
               "--fasta", str(shared / CHR2), "--out", str(out), "--batch-size", str(batch_size),
               "--force", "--no-progress"]
        start = time.perf_counter()
        # one intra-op thread: on a shared 2-core machine torch's spinning threads cost more
        # than they give for a model this small
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        with open(work / f"rss_{n}.stdout", "w+") as out_log, open(work / f"rss_{n}.stderr", "w+") as err_log:
            proc = subprocess.Popen(cmd, stdout=out_log, stderr=err_log, text=True, env=env)
            peak_kb = peak_rss_kb(proc)
            seconds = time.perf_counter() - start
            out_log.seek(0)
            err_log.seek(0)
            stdout, stderr = out_log.read(), err_log.read()
        if proc.returncode != 0:
            raise RuntimeError(f"score-vcf failed: {stderr}")
        match = re.search(r"scored ([\d,]+) of", stdout)
        rows.append({"variants": n, "scored": int(match.group(1).replace(",", "")),
                     "peak_rss_mb": peak_kb / 1024, "seconds": seconds,
                     "variants_per_s": n / seconds})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def peak_rss_kb(proc: subprocess.Popen, interval: float = 0.1) -> int:
    """The child's VmHWM (peak RSS of its own address space), polled until it exits.

    Not ``wait4``'s ``ru_maxrss``: a forked child starts with its parent's peak, and this
    benchmark's own process is large after the speed section.
    """
    peak = 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(interval)
    proc.wait()
    return peak


# --------------------------------------------------------------------------- kircher


def kircher_fasta(work: Path, shared: Path, pad: int = 100_000) -> Path:
    """Element sequences at their real GRCh38 coordinates, N elsewhere (bgzip + .fai/.gzi)."""
    import pysam
    from pysam.libcbgzf import BGZFile

    path = work / "kircher_elements_GRCh38_Npadded.fa.gz"
    work.mkdir(parents=True, exist_ok=True)  # pysam's BGZFile segfaults on a missing directory
    if path.exists() and Path(f"{path}.fai").exists():
        return path
    pieces: dict[str, list[tuple[int, str]]] = {}
    name = None
    for line in (shared / KIRCHER_FA).read_text().splitlines():
        if line.startswith(">"):
            chrom, span = line.split()[1].split(":")
            start = int(span.split("-")[0])
            pieces.setdefault(chrom, []).append((start, ""))
            name = chrom
        else:
            start, seq = pieces[name][-1]
            pieces[name][-1] = (start, seq + line.strip().upper())
    width, chunk = 60, 60 * 100_000
    tmp = path.with_name(path.name + ".tmp")
    with BGZFile(str(tmp), "wb") as handle:
        for chrom in sorted(pieces):
            length = max(s + len(q) - 1 for s, q in pieces[chrom]) + pad
            handle.write(f">{chrom}\n".encode())
            for lo in range(0, length, chunk):
                hi = min(lo + chunk, length)
                block = np.full(hi - lo, ord("N"), dtype=np.uint8)
                for start, seq in pieces[chrom]:
                    s0, s1 = max(start - 1, lo), min(start - 1 + len(seq), hi)
                    if s1 > s0:
                        block[s0 - lo : s1 - lo] = np.frombuffer(
                            seq[s0 - start + 1 : s1 - start + 1].encode(), dtype=np.uint8)
                handle.write(b"\n".join(block[i : i + width].tobytes()
                                        for i in range(0, len(block), width)) + b"\n")
    os.replace(tmp, path)
    pysam.faidx(str(path))
    return path


def kircher_subset(work: Path, shared: Path, sites_per_element: int, seed: int = 0) -> Path:
    """The Kircher VCF, or all records at ``sites_per_element`` random sites of each element.

    Sampling sites (not records) keeps what the real file has: 3 ALTs per site, and sites
    measured in several experiments (TERT x4, SORT1 x3, ...). Original order is kept.
    """
    source = shared / KIRCHER_VCF
    if not sites_per_element:
        return source
    header, records = _kircher_records(shared)
    site = [tuple(x.split("\t", 2)[:2]) for x in records]
    element = [re.search(r"EL=([^;\t]+)", x).group(1) for x in records]
    rng = np.random.default_rng(seed)
    keep_sites = set()
    for name in sorted(set(element)):
        sites = sorted({site[i] for i, e in enumerate(element) if e == name})
        picks = rng.choice(len(sites), size=min(sites_per_element, len(sites)), replace=False)
        keep_sites.update(sites[i] for i in picks)
    path = work / f"kircher_{sites_per_element}_sites_per_element.vcf"
    path.write_text("".join(header) + "".join(r for r, st in zip(records, site, strict=True)
                                              if st in keep_sites))
    return path


def kircher_sites(work: Path, shared: Path, n_sites: int, seed: int = 1) -> Path:
    """All records at ``n_sites`` random sites of the Kircher VCF (for the speed section)."""
    header, records = _kircher_records(shared)
    site = [tuple(x.split("\t", 2)[:2]) for x in records]
    distinct = sorted(set(site))
    picks = {distinct[i] for i in np.random.default_rng(seed).choice(len(distinct), n_sites, replace=False)}
    path = work / f"kircher_speed_{n_sites}_sites.vcf"
    path.write_text("".join(header) + "".join(r for r, st in zip(records, site, strict=True) if st in picks))
    return path


def _kircher_records(shared: Path) -> tuple[list[str], list[str]]:
    import gzip

    with gzip.open(shared / KIRCHER_VCF, "rt") as handle:
        lines = handle.read().splitlines(keepends=True)
    return [x for x in lines if x.startswith("#")], [x for x in lines if not x.startswith("#")]


def kircher(models: dict[str, list[tuple[str, str]]], sites_per_element: int, batch_size: int,
            work: Path, shared: Path) -> tuple[pd.DataFrame, list[dict]]:
    """Per-element Spearman of predicted log2FC vs measured COEF for every (arch, label, spec)."""
    from genocl_plugin.evaluation import evaluate
    from genocl_plugin.scoring import variants

    fasta = kircher_fasta(work, shared)
    vcf = kircher_subset(work, shared, sites_per_element)
    measured = pd.DataFrame(
        [(v.id, re.search(r"EL=([^;]+)", v.info).group(1), float(re.search(r"COEF=([^;]+)", v.info).group(1)))
         for v in variants.read_variants(vcf)], columns=["ID", "element", "coef"]).set_index("ID")
    columns, runs = {}, []
    for arch, specs in models.items():
        for label, spec in specs:
            model, _ = variants.load_scoring_model(spec)
            out = work / f"kircher_{arch}_{label}.tsv"
            summary = variants.score_vcf(vcf, model, fasta, out, tracks=KIRCHER_TRACKS[arch],
                                         aggregate=True, scores=["log2fc"], batch_size=batch_size,
                                         model_name=f"{arch}-{label}", force=True)
            scores = pd.read_csv(out, sep="\t").set_index("ID").iloc[:, -1]
            columns[f"{arch} {label}"] = scores
            split = split_of(spec)
            runs.append({"arch": arch, "label": label, "spec": str(spec), "scored": summary["scored"],
                         "skipped": summary["skipped_total"], "seconds": summary["seconds"],
                         "variants_per_s": summary["variants_per_s"], **split})
            print(json.dumps(runs[-1]), flush=True)
    table = measured.join(pd.DataFrame(columns))
    rows = []
    for element, group in table.groupby("element"):
        row = {"element": element, "n": len(group)}
        for name in columns:
            row[name] = evaluate.spearman(group[name], group["coef"])
        rows.append(row)
    return pd.DataFrame(rows), runs


def split_of(spec: str) -> dict:
    """The train / held-out elements an updated run recorded (empty for base models)."""
    metrics = Path(spec) / "metrics.json"
    if not metrics.exists():
        return {}
    split = json.loads(metrics.read_text()).get("split", {})
    return {"train_elements": split.get("train_elements", []),
            "test_elements": split.get("test_elements", [])}


# --------------------------------------------------------------------------- report


def markdown(speed_rows: list[dict], rss_rows: list[dict], spearman: pd.DataFrame | None,
             runs: list[dict]) -> str:
    out = []
    if speed_rows:
        out += ["| model | variants | genocl variants/s | gReLU variants/s | raw forward variants/s "
                "| genocl / gReLU | genocl / forward | max abs diff vs gReLU (max abs score) |",
                "|---|---|---|---|---|---|---|---|"]
        out += [f"| {r['model']} ({r['seq_len']} bp) | {r['variants']} at {r['sites']} sites: {r['data']} | "
                f"{r['genocl_vps']:.2f} | "
                f"{r['grelu_vps']:.2f} | {r['forward_vps']:.2f} | {r['vs_grelu']:.2f}x | "
                f"{100 * r['of_ceiling']:.0f}% | {r['max_abs_diff_vs_grelu']:.2g} ({r['max_abs_score']:.2g}) |"
                for r in speed_rows]
        out.append("")
    if rss_rows:
        out += ["| variants | scored | peak RSS (MB) | wall time (s) | variants/s |", "|---|---|---|---|---|"]
        out += [f"| {r['variants']:,} | {r['scored']:,} | {r['peak_rss_mb']:.0f} | {r['seconds']:.0f} | "
                f"{r['variants_per_s']:.0f} |" for r in rss_rows]
        if len(rss_rows) > 1:
            out.append(f"\nPeak RSS difference: {rss_rows[-1]['peak_rss_mb'] - rss_rows[0]['peak_rss_mb']:+.0f} MB")
        out.append("")
    if spearman is not None:
        held = {r["arch"]: set(r.get("test_elements", [])) for r in runs if r.get("test_elements")}
        trained = {r["arch"]: set(r.get("train_elements", [])) for r in runs if r.get("train_elements")}
        names = [c for c in spearman.columns if c not in ("element", "n")]
        out += ["| element | n | " + " | ".join(names) + " | in update |",
                "|---|---|" + "---|" * len(names) + "---|"]
        for _, r in spearman.iterrows():
            marks = ",".join(f"{a}:{'train' if r['element'] in trained[a] else 'held-out'}"
                             for a in sorted(trained)
                             if r["element"] in trained[a] or r["element"] in held.get(a, set()))
            out.append(f"| {r['element']} | {r['n']} | " + " | ".join(f"{r[c]:+.3f}" for c in names)
                       + f" | {marks or '-'} |")
        out.append("| **median** | | " + " | ".join(f"**{spearman[c].median():+.3f}**" for c in names) + " | |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="speed,dense,rss,kircher")
    parser.add_argument("--dense-variants", type=int, default=512,
                        help="Real GEUVADIS chr2 SNVs of the dense section.")
    parser.add_argument("--shared", type=Path, default=None,
                        help="the real data (default $GENOCL_SHARED, else ../shared/data beside the checkout)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/genocl-bench-score-vcf"))
    parser.add_argument("--archs", default="enformer,procapnet")
    parser.add_argument("--speed-variants", type=int, default=32)
    parser.add_argument("--speed-kircher-sites", type=int, default=8,
                        help="Random Kircher sites (all their records) for the second speed row.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--rss-sizes", default="10000,1000000")
    parser.add_argument("--rss-batch-size", type=int, default=256)
    parser.add_argument("--kircher-sites-per-element", type=int, default=6,
                        help="Random sites per element, with all their SNVs "
                             "(0 = the whole Kircher VCF: 39,170 SNVs at 9,840 sites).")
    parser.add_argument("--updated", action="append", default=[],
                        help="arch=path of an updated model (run dir), repeatable.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.provenance import shared_dir

    args.shared = shared_dir(args.shared)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.workdir.mkdir(parents=True, exist_ok=True)
    sections = set(args.only.split(","))
    archs = args.archs.split(",")
    speed_rows = speed(archs, args.speed_variants, args.speed_kircher_sites, args.batch_size,
                       args.repeats, args.workdir, args.shared) if "speed" in sections else []
    dense_rows = dense(archs, args.dense_variants, args.batch_size, args.repeats, args.workdir,
                       args.shared) if "dense" in sections else []
    rss_rows = rss([int(x) for x in args.rss_sizes.split(",")], args.workdir, args.shared,
                   args.rss_batch_size) if "rss" in sections else []
    spearman, runs = None, []
    if "kircher" in sections:
        models = {arch: [("base", arch)] for arch in archs}
        for item in args.updated:
            arch, path = item.split("=", 1)
            models.setdefault(arch, []).append(("updated", path))
        spearman, runs = kircher(models, args.kircher_sites_per_element, args.batch_size,
                                 args.workdir, args.shared)
    report = markdown(speed_rows, rss_rows, spearman, runs)
    if dense_rows:
        report += "\n\n" + dense_markdown(dense_rows)
    print(report)
    if args.json:
        args.json.write_text(json.dumps({
            "speed": speed_rows, "dense": dense_rows, "rss": rss_rows, "kircher_runs": runs,
            "kircher_spearman": None if spearman is None else spearman.to_dict(orient="records"),
        }, indent=2, default=str))


if __name__ == "__main__":
    main()
