"""``genocl screen``: convert and validate perturbation screens and activity libraries."""

from __future__ import annotations

import click

from genocl_cli import params as P
from genocl_cli.main import head_option, trust_checkpoint_option, user_errors


@click.group()
def screen() -> None:
    """Convert public screen tables to genocl's .h5ad layout, and validate screens."""


@screen.command("from-satmut")
@click.option("--table", required=True, type=click.Path(), help="Kircher 2019 elements.tsv.gz.")
@click.option("--fasta", required=True, type=click.Path(),
              help="Element reference sequences FASTA.")
@click.option("--out", required=True, type=click.Path(), help="Output .h5ad.")
@click.option("--elements", default=None,
              help="Comma-separated element names, or 'enhancers' / 'promoters'.")
@click.option("--release", default="GRCh38", show_default=True)
@click.option("--max-per-element",
              type=P.positive_int("pass a number of variants >= 1, or leave it out"),
              default=None, help="Subsample variants per element.")
@click.option("--seed", type=P.non_negative_int("pass a seed >= 0"), default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@user_errors
def from_satmut(table, fasta, out, elements, release, max_per_element, seed, force) -> None:
    """Kircher et al. 2019 saturation mutagenesis -> MPRA screen.

    \b
    Example:
      genocl screen from-satmut --table elements.tsv.gz \\
        --fasta DERIVED_element_reference_sequences_GRCh38.fa --elements enhancers --out mpra.h5ad
    """
    from genocl_plugin.data import screens

    _refuse_existing(out, force)
    groups = {"enhancers": screens.KIRCHER_ENHANCERS, "promoters": screens.KIRCHER_PROMOTERS}
    names = groups.get(elements) or (elements.split(",") if elements else None)
    adata = screens.from_satmut(table, fasta, elements=names, release=release,
                                max_per_element=max_per_element, seed=seed)
    screens.write_screen(adata, out, force=force)
    n_elements = adata.obs["element"].nunique()
    click.echo(f"wrote {out}: {adata.n_obs} variants over {n_elements} elements")


@screen.command("from-crispri")
@click.option("--table", required=True, type=click.Path(), help="EPCrisprBenchmark_*.tsv.gz.")
@click.option("--fasta", default=None, type=click.Path(),
              help="hg38 FASTA (default: bundled windows).")
@click.option("--out", required=True, type=click.Path(), help="Output .h5ad.")
@click.option("--dataset", multiple=True, help="Keep only these Dataset values.")
@click.option("--model", "model_spec", default=None,
              help="Keep only the pairs this model's geometry can hold (its input length and output), "
                   "as `genocl update --model` would read them.")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@trust_checkpoint_option
@head_option
@user_errors
def from_crispri(table, fasta, out, dataset, model_spec, force, trust_checkpoint, head) -> None:
    """EngreitzLab CRISPRi benchmark -> CRISPRi screen.

    With --model, each element-gene pair must fit one input window of the model's input length
    (element inside the input, TSS inside the output); the others are skipped and counted.

    \b
    Example:
      genocl screen from-crispri \\
        --table EPCrisprBenchmark_combined_data.training_K562.GRCh38.tsv.gz \\
        --fasta hg38.fa --model enformer_dir --out crispri.h5ad
    """
    from genocl_plugin.data import screens

    _refuse_existing(out, force)
    model = None
    if model_spec is not None:
        from genocl_plugin.models import enformer_head, load_model, trusted_checkpoints

        with trusted_checkpoints(trust_checkpoint), enformer_head(head):
            model = load_model(model_spec)
    adata = screens.from_crispri(table, sequence_source=fasta or "bundled",
                                 datasets=list(dataset) or None)
    if model is not None:
        adata, message = screens.drop_unfit_crispri(adata, model, table, field="--model")
        click.echo(message)
    cell_types = screens.record_cell_type(adata)  # of the pairs written (after --model's filter)
    screens.write_screen(adata, out, force=force)
    line = screens.format_cell_types(cell_types)
    if line:
        click.echo(line)
    click.echo(f"wrote {out}: {adata.n_obs} element-gene pairs")


@screen.command("from-personal")
@click.option("--vcf", default=None, type=click.Path(), help="Phased VCF/BCF (GT a|b), read with cyvcf2.")
@click.option("--dosages", default=None, type=click.Path(),
              help="Unphased dosage table CHROM POS REF ALT <samples> (eQTL-Catalogue *.dose.tsv.gz).")
@click.option("--expression", required=True, type=click.Path(),
              help="Expression table, genes x samples (first column the gene id).")
@click.option("--samples-as-rows", is_flag=True, help="The expression table is samples x genes.")
@click.option("--sample-map", default=None, type=click.Path(),
              help="TSV with sample_id and genotype_id columns renaming expression samples.")
@click.option("--genes", required=True, type=click.Path(),
              help="Gene id, chrom, TSS (1-based), strand (eQTL-Catalogue phenotype_metadata works).")
@click.option("--fasta", required=True, help="hg38 FASTA, or 'bundled' for genocl's hg38 windows.")
@click.option("--model", "model_spec", default=None, help="Model whose input length sets the window.")
@click.option("--input-length", type=int, default=None, help="Input window (bp) instead of --model.")
@click.option("--log2p1", is_flag=True, help="Store log2(1 + expression) (for RPKM/TPM values).")
@click.option("--out", required=True, type=click.Path(), help="Output .h5ad.")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@user_errors
def from_personal(vcf, dosages, expression, samples_as_rows, sample_map, genes, fasta, model_spec,
                  input_length, log2p1, out, force) -> None:
    """Personal genomes (genotypes + expression) -> personal screen (one row per person x gene).

    \b
    Example:
      genocl screen from-personal --vcf cohort.vcf.gz --expression expr.tsv \\
        --genes genes.tsv --fasta hg38.fa --model enformer --out personal.h5ad
    """
    from genocl_plugin.data import personal, screens
    from genocl_plugin.errors import input_error

    _refuse_existing(out, force)
    if (model_spec is None) == (input_length is None):
        raise input_error("--model/--input-length", "input length", "give exactly one of them",
                          "pass --model MODEL (its input length) or --input-length N")
    if input_length is None:
        from genocl_plugin.models import load_model

        input_length = load_model(model_spec).seq_len
    adata, summary = personal.from_personal(expression, genes, fasta, input_length, vcf=vcf, dosages=dosages,
                                            samples_as_rows=samples_as_rows, sample_map=sample_map, log2p1=log2p1)
    screens.write_screen(adata, out, force=force)
    click.echo(personal.format_summary(summary))
    click.echo(f"wrote {out}: {adata.n_obs} rows, {adata.obs['gene_id'].nunique()} genes x "
               f"{adata.obs['individual'].nunique()} individuals, {input_length}-bp windows")


@screen.command("from-tracks")
@click.option("--bigwig", "bigwigs", multiple=True, type=click.Path(),
              help="A coverage bigWig (one per track; repeat).")
@click.option("--fasta", default=None, type=click.Path(),
              help="The genome FASTA the bigWigs are on ('bundled': genocl's hg38 windows).")
@click.option("--regions", default=None, type=click.Path(),
              help="BED of equal-length windows: chrom start end [train|valid|test].")
@click.option("--names", default=None, help="Comma-separated track names (default: the bigWig file names).")
@click.option("--bin-size", type=P.positive_int("pass a bin size in bp >= 1"), default=None,
              help="bp per coverage bin (default: the --model's bins, else 32).")
@click.option("--context", type=P.non_negative_int("pass a context in bp >= 0"), default=None,
              help="bp of sequence kept on each side of a window (default: what the --model's input needs).")
@click.option("--model", "model_spec", default=None,
              help="Size the bins and sequence context for this model (its input reaches past its output).")
@click.option("--basenji-npz", default=None, type=click.Path(),
              help="Instead of bigWigs: Basenji-style arrays {train,valid,test}_seq/_targets/_coords.")
@click.option("--targets", default=None, type=click.Path(), help="targets.txt naming the --basenji-npz tracks.")
@click.option("--prefix", default="", help="Prepended to every track name (e.g. 'mm10 ').")
@click.option("--genome", default="", help="Genome assembly name recorded in the screen (e.g. mm10).")
@click.option("--out", required=True, type=click.Path(), help="Output .h5ad.")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@trust_checkpoint_option
@head_option
@user_errors
def from_tracks(bigwigs, fasta, regions, names, bin_size, context, model_spec, basenji_npz, targets, prefix,
                genome, out, force, trust_checkpoint, head) -> None:
    """Coverage tracks (bigWigs over windows, or Basenji arrays) -> tracks screen.

    `genocl update --data` on it trains the tracks: in place if the model predicts them, else
    in a new head (multihead), as Enformer's mouse head was added beside its human one.

    \b
    Example:
      genocl screen from-tracks --bigwig atac.bw --bigwig h3k27ac.bw --fasta hg38.fa \\
        --regions windows.bed --model enformer_dir --out my_tracks.h5ad
    """
    from genocl_plugin.data import screens, tracks
    from genocl_plugin.errors import input_error

    _refuse_existing(out, force)
    if basenji_npz:
        if bigwigs or targets is None:
            raise input_error("--basenji-npz", "--targets", "needs its targets.txt and no --bigwig",
                              "pass --basenji-npz DATA.npz --targets targets.txt")
        adata = tracks.from_basenji_arrays(basenji_npz, targets, prefix=prefix, genome=genome)
    else:
        if not bigwigs or fasta is None or regions is None:
            raise input_error("--bigwig/--fasta/--regions", "inputs", "missing",
                              "pass --bigwig (one or more), --fasta and --regions, or --basenji-npz")
        if model_spec is not None:
            from genocl_plugin.models import enformer_head, load_model, trusted_checkpoints

            with trusted_checkpoints(trust_checkpoint), enformer_head(head):
                model = load_model(model_spec)
            bin_size = bin_size or model.bin_size
            context = model.output_offset() if context is None else context
        track_names = [prefix + n for n in names.split(",")] if names else None
        if track_names is not None and len(track_names) != len(bigwigs):
            raise input_error("--names", names, f"{len(track_names)} names for {len(bigwigs)} bigWigs",
                              "give one name per --bigwig")
        adata = tracks.from_bigwigs(list(bigwigs), fasta, regions, bin_size=bin_size or 32, context=context or 0,
                                    names=track_names, genome=genome)
    screens.write_screen(adata, out, force=force)
    split = adata.obs["split"].value_counts().to_dict() if "split" in adata.obs else {}
    click.echo(f"wrote {out}: {adata.n_obs} windows ({', '.join(f'{v} {k}' for k, v in split.items()) or 'no split'}),"
               f" {len(adata.uns['track_names'])} tracks at {adata.uns['bin_size']} bp")


@screen.command("from-activity")
@click.argument("table", type=click.Path())
@click.option("--sequence-column", default="sequence", show_default=True,
              help="Column holding each sequence (A/C/G/T/N).")
@click.option("--activity-column", default="activity", show_default=True,
              help="Column holding the measured activity (e.g. log2 RNA/DNA).")
@click.option("--out", required=True, type=click.Path(), help="Output .h5ad.")
@click.option("--source", default=None, help="Provenance stored in uns['source'] (default: file and columns).")
@click.option("--trim-adapters", nargs=2, type=P.non_negative_int("pass two lengths in nt >= 0, e.g. 15 15"),
              default=(0, 0), metavar="N5 N3", help="Cut N5 bases from the 5' end and N3 from the 3' end of every "
              "sequence (constant library adapters).")
@click.option("--group-column", default=None,
              help="Column naming each row's hold-out group (default: a sequence and its reverse complement "
                   "share one, else each row is its own).")
@click.option("--split-column", default=None, help="Column with train / valid / test per row (used by "
              "`genocl update` instead of --holdout; valid rows are used by neither).")
@click.option("--no-pair-strands", is_flag=True,
              help="Do not group a sequence with its reverse complement (without --group-column).")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@user_errors
def from_activity(table, sequence_column, activity_column, out, source, trim_adapters, group_column, split_column,
                  no_pair_strands, force) -> None:
    """Sequences with a measured activity (lentiMPRA, STARR-seq, promoter libraries) -> activity screen.

    TABLE is a TSV or CSV (plain or gzipped) with a header line. `genocl update --data` on the
    screen trains the model's predicted log activity of each sequence (centred in the input,
    padded with N) to track the measured one.

    \b
    Example (lentiMPRA, 230-nt oligos = 15-nt adapters + 200-nt element + 15-nt adapters):
      genocl screen from-activity WTC11_test.tsv.gz --sequence-column seq \\
        --activity-column mean_value --trim-adapters 15 15 --out wtc11.h5ad
    """
    from genocl_plugin.data import screens

    _refuse_existing(out, force)
    adata, summary = screens.from_activity(table, sequence_column, activity_column, source=source,
                                           trim_adapters=tuple(trim_adapters), group_column=group_column,
                                           split_column=split_column, pair_strands=not no_pair_strands)
    screens.write_screen(adata, out, force=force)
    n5, n3 = trim_adapters
    for side, n, seen in (("5'", n5, summary["adapters"][0]), ("3'", n3, summary["adapters"][1])):
        if n:
            what = f"{seen[0]} in every row" if len(seen) == 1 else f"{len(seen)} different ones, e.g. {seen[0]}"
            click.echo(f"trimmed {n} nt at the {side} end ({what})")
    low, high = summary["lengths"]
    lengths = f"{low} nt" if low == high else f"{low}-{high} nt"
    pairs, groups = summary["strand_pairs"], summary["groups"]
    grouping = (f"{groups} groups from --group-column" if group_column else
                f"{pairs} sequence/reverse-complement pairs share a group ({groups} groups)" if pairs
                else "each row its own group")
    split = ", ".join(f"{v} {k}" for k, v in summary["split"].items())
    click.echo(f"wrote {out}: {summary['rows']} sequences of {lengths}; {grouping}"
               + (f"; split {split}" if split else ""))


@screen.command("validate")
@click.argument("path", type=click.Path())
@user_errors
def validate(path) -> None:
    """Check a screen .h5ad against genocl's layout.

    \b
    Example:
      genocl screen validate mpra.h5ad
    """
    from genocl_plugin.data import screens

    adata = screens.read_screen(path)
    click.echo(f"{path}: valid {adata.uns['assay']} screen with {adata.n_obs} rows")


def _refuse_existing(out, force: bool) -> None:
    """Fail before a slow conversion if ``--out`` exists and ``--force`` was not given."""
    from pathlib import Path

    from genocl_plugin.errors import input_error

    if Path(out).exists() and not force:
        raise input_error(out, "--out", "already exists", "choose another path or pass --force")
