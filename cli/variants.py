"""``genocl score-vcf``: score the variants of a VCF with a model."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from genocl_cli import params as P
from genocl_cli.main import head_option, trust_checkpoint_option, user_errors


@click.command("score-vcf")
@click.option("--model", "model_spec", required=True,
              help="enformer | procapnet (bundled minis), a zoo entry, a run dir, a genocl model "
                   "dir, a gReLU .ckpt, an enformer-pytorch or borzoi-pytorch dir or a bpnet-lite .pt/.torch.")
@click.option("--vcf", required=True, type=click.Path(), help="Variants: .vcf, .vcf.gz or .bcf.")
@click.option("--fasta", required=True, type=click.Path(),
              help="Genome FASTA of the VCF's assembly (plain or bgzip; index built if missing).")
@click.option("--out", required=True, type=click.Path(),
              help="scores.tsv (kipoi-veff2 columns), scores.vcf.gz (INFO, tabix) or scores.h5ad.")
@click.option("--tracks", multiple=True,
              help="Track index, indices (0,3,7), exact name or pattern ('CAGE:*'); repeatable. "
                   "Default: all tracks.")
@click.option("--aggregate", is_flag=True, help="Sum the selected tracks into one score.")
@click.option("--window", type=P.positive_int("pass a window in bp >= 1, or leave it out for all output"), default=None,
              help="bp of output centred on the variant to sum over (default: all output).")
@click.option("--share-windows", is_flag=True,
              help="Score SNVs/MNVs against one REF pass per input window shared with their neighbours (one ALT "
                   "pass each, read at --window bp around each; needs --window). Up to ~2x fewer passes on a "
                   "dense VCF; scores differ from centred ones by the model's context (docs/scoring.md).")
@click.option("--scores", default="diff,log2fc", show_default=True,
              help="Comma-separated: diff (alt - ref), log2fc (log2 alt/ref).")
@click.option("--rc", is_flag=True, help="Average the predictions of both strands.")
@click.option("--batch-size", type=P.positive_int("pass a number of variants per batch >= 1, e.g. 64"),
              default=None,
              help="Variants per batch (memory is bounded by this, not by the VCF; default: from the "
                   "model's size and input length, 64 for the minis).")
@click.option("--devices", default="cpu", show_default=True, help="cpu, cuda, or GPU ids (0 or 0,1).")
@click.option("--region", default=None, help="Only chrom[:start-end] (1-based, by POS).")
@click.option("--shard", default=None, help="i/n: only every n-th record starting at the i-th.")
@click.option("--allow-ref-mismatch", is_flag=True,
              help="Score variants whose REF disagrees with the FASTA (reported either way).")
@click.option("--name", default=None, help="Model name in the score columns (default: from --model).")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress on stderr: a bar with variants/s and ETA on a terminal, else a line every 30 s "
                   "(GENOCL_PROGRESS_INTERVAL). The [stage i/n] lines are printed either way.")
@trust_checkpoint_option
@head_option
@click.option("--precision", type=click.Choice(["32", "bf16-mixed", "16-mixed"]), default="32", show_default=True,
              help="Autocast the forward pass (bf16-mixed: less memory, ~3 significant digits; 16-mixed: GPU only).")
@user_errors
def score_vcf(model_spec, vcf, fasta, out, tracks, aggregate, window, share_windows, scores, rc, batch_size,
              devices, region, shard, allow_ref_mismatch, name, force, progress, trust_checkpoint,
              head, precision) -> None:
    """Score every ALT allele of a VCF: alt - ref and log2 fold change of the predicted signal.

    Multi-allelic records are split; symbolic and * alleles are skipped and counted; REF
    alleles are checked against the FASTA (mismatches are skipped and listed in
    <out>.skipped.tsv). The output is written under a temporary name and renamed when
    complete.

    \b
    Example:
      genocl score-vcf --model enformer --vcf variants.vcf.gz --fasta hg38.fa \\
        --out scores.vcf.gz --tracks 'CAGE:*' --aggregate --window 1024 --rc
      genocl score-vcf --model runs/enhancers --vcf all.vcf.gz --fasta hg38.fa \\
        --out part3.tsv --shard 3/20
    """
    import warnings

    from genocl_plugin.data import reference
    from genocl_plugin.errors import input_error
    from genocl_plugin.progress import StageLog
    from genocl_plugin.scoring import variants
    from genocl_plugin.training import hardware

    # Cheap checks first: a bad option or file fails before torch and the model are imported
    # (several seconds): --devices and --precision need torch only when a GPU exists.
    variants.output_kind(out)
    if Path(out).is_dir():
        raise input_error(out, "--out", "is a directory", "name an output file, e.g. scores.tsv")
    gpus = variants.check_devices(devices)
    hardware.check_precision(precision, "cpu" if gpus is None else "cuda")
    for path in (Path(out), Path(f"{out}.skipped.tsv")):
        if path.exists() and not force:
            raise input_error(path, "--out", "already exists", "choose another path or pass --force")
    variants.check_share_windows(share_windows, window)  # before the model loads
    if shard:
        variants.parse_shard(shard)
    if region:
        variants.parse_region(region)
    from genocl_plugin.data.fileio import claim

    # [stage i/n] lines on stderr once the inputs are checked: model, (counting,) scoring
    stages = StageLog(total=3 if variants.countable(vcf) else 2)
    with claim(out), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", variants.VariantWarning)
        variants.read_header(vcf)  # a missing, unreadable or header-less VCF: one line, before the model
        reference.open_fasta(fasta)
        with stages:  # score_vcf's counting and scoring stages continue its numbering
            with stages.stage("loading the model", str(model_spec)):
                from genocl_plugin.models import enformer_head, trusted_checkpoints  # torch, gReLU: seconds

                with trusted_checkpoints(trust_checkpoint), enformer_head(head):
                    model, label = variants.load_scoring_model(model_spec)
            device, _ = variants.parse_devices(devices)
            batch_size = batch_size or hardware.default_batch_size(model.model, model.seq_len, training=False,
                                                                   device_type=str(device).split(":")[0])
            with hardware.autocast(device, precision):
                summary = variants.score_vcf(
                    vcf, model, fasta, out, tracks=list(tracks) or None, window=window,
                    aggregate=aggregate, scores=[s.strip() for s in scores.split(",") if s.strip()],
                    rc=rc, batch_size=batch_size, devices=devices, region=region, shard=shard,
                    allow_ref_mismatch=allow_ref_mismatch, model_name=name or label, force=force,
                    share_windows=share_windows, progress=progress, command=shlex.join(["genocl", *sys.argv[1:]]))
    for message in dict.fromkeys(str(w.message) for w in caught
                                 if issubclass(w.category, variants.VariantWarning)):
        click.echo(f"warning: {message}", err=True)
    for line in summary_lines(summary):
        click.echo(line)


def summary_lines(summary: dict) -> list[str]:
    """The end-of-run report: counts, speed, skipped alleles by reason, REF mismatches."""
    from genocl_plugin.progress import format_duration, format_rate

    lines = [f"scored {summary['scored']:,} of {summary['alleles']:,} alleles "
             f"({summary['records']:,} records) in {format_duration(summary['seconds'])} "
             f"({format_rate(summary['scored'], summary['seconds'], 'variant')}) -> {summary['out']}"]
    skipped = {k: v for k, v in summary["skipped"].items() if v}
    report = f"{summary['out']}.skipped.tsv"
    if skipped:
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in skipped.items())
        lines.append(f"skipped {sum(skipped.values()):,} alleles: {reasons} (listed in {report})")
    if summary["ref_mismatch_scored"]:
        lines.append(f"scored {summary['ref_mismatch_scored']:,} alleles despite a REF mismatch "
                     f"(--allow-ref-mismatch; listed in {report})")
    if summary["mismatch_examples"]:
        lines.append("REF mismatches, first ones: " + "; ".join(summary["mismatch_examples"]))
    if summary.get("unsorted"):
        lines.append(f"note: the VCF is not sorted, so {summary['out']} is not tabix-indexed; "
                     "sort it with `bcftools sort -Oz` and index it with `tabix -p vcf`")
    return lines
