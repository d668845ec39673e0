"""``genocl publish`` and ``genocl zoo``: Kipoi model-zoo entries of genocl models."""

from __future__ import annotations

import click

from genocl_cli.main import head_option, trust_checkpoint_option, user_errors

ZOO_OPTION = click.option("--zoo", "zoo_dir", default="model_zoo", show_default=True,
                          type=click.Path(), help="Zoo root directory.")


@click.command()
@click.argument("source")
@ZOO_OPTION
@click.option("--name", default=None,
              help="Entry name group/model-vN (without -vN: the next free version; "
                   "default: <base model>/<screens seen>).")
@click.option("--author", "authors", multiple=True, help="info.authors name (repeatable).")
@click.option("--force", is_flag=True, help="Replace an existing version.")
@click.option("--no-check", is_flag=True, help="Skip Kipoi's own test of the entry (not recommended).")
@click.option("--example-fasta", default=None, type=click.Path(),
              help="Genome FASTA to cut the Kipoi example files from, at the model's input length "
                   "(default: the reference FASTA the model's updates used, else genocl's bundled "
                   "524,288-bp hg38 piece).")
@click.option("--example-region", default=None,
              help="chr:start-end (1-based) of --example-fasta for the examples (default: the first "
                   "stretch with < 1% N).")
@trust_checkpoint_option
@head_option
@user_errors
def publish(source, zoo_dir, name, authors, force, no_check, example_fasta, example_region,
            trust_checkpoint, head) -> None:
    """Publish a run or checkpoint SOURCE as a Kipoi model-zoo entry.

    SOURCE is a run directory (genocl update --out), a genocl model directory, enformer /
    procapnet (the bundled base models) or a checkpoint genocl reads. The entry is written
    to a temporary folder, checked with Kipoi's own `kipoi test`, then renamed into place.

    \b
    Example:
      genocl publish runs/enhancers --zoo model_zoo --name enformer-mini/enhancers-v1
      python -c 'import kipoi; kipoi.get_model("model_zoo/enformer-mini/enhancers-v1", source="dir")'
    """
    from genocl_plugin import zoo
    from genocl_plugin.models import enformer_head, trusted_checkpoints

    with trusted_checkpoints(trust_checkpoint), enformer_head(head):
        entry = zoo.publish(source, zoo_dir, name, force=force, authors=list(authors) or None,
                            check=not no_check, example_fasta=example_fasta, example_region=example_region)
    click.echo(f"wrote {entry}/ (model.yaml, dataloader.yaml, model.safetensors, README.md, example_files/)")
    if not no_check:
        click.echo("kipoi test: passed (example intervals -> dataloader -> model; expected outputs match)")


@click.group()
def zoo() -> None:
    """List, show, test and register the entries of a genocl Kipoi model zoo."""


@zoo.command("list")
@ZOO_OPTION
@user_errors
def list_(zoo_dir) -> None:
    """List the entries with their lineage and metrics.

    \b
    Example:
      genocl zoo list --zoo model_zoo
    """
    from genocl_plugin import zoo as lib

    entries = lib.list_entries(zoo_dir)
    if not entries:
        click.echo(f"no entries in {zoo_dir}")
        return
    rows = [("NAME", "ARCH", "INPUT", "OUTPUT", "SCREENS", "STRATEGY", "NEW-TASK r", "RETENTION r")]
    for e in entries:
        rows.append((e["name"], e["arch"], e["input"], e["output"], ",".join(e["screens"]) or "-",
                     e["strategy"] or "-", _num(e["new_task_pearson"]), _num(e["retention_pearson"])))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    click.echo("\nlineage:")
    for e in entries:
        click.echo(f"  {e['name']}: {' -> '.join(e['lineage']) or '-'}")


@zoo.command("show")
@click.argument("name")
@ZOO_OPTION
@user_errors
def show(name, zoo_dir) -> None:
    """Show one entry: description, lineage, metrics, files and checksum status.

    \b
    Example:
      genocl zoo show enformer-mini/base-v1 --zoo model_zoo
    """
    from genocl_plugin import zoo as lib

    entry = lib.find_entry(zoo_dir, name)
    e = lib.entry_summary(entry, name)
    click.echo(f"{name}  ({entry})")
    click.echo(f"  {e['doc']}")
    click.echo(f"  arch: {e['arch']}   input: {e['input']}   output: {e['output']}")
    click.echo(f"  screens seen: {', '.join(e['screens']) or 'none'}   strategy: {e['strategy'] or '-'}")
    click.echo("  lineage:")
    for i, step in enumerate(e["lineage"], start=1):
        click.echo(f"    {i}. {step}")
    click.echo("  metrics:")
    click.echo(f"    new task effect Pearson (held-out): {_num(e['new_task_pearson_before'])} -> "
               f"{_num(e['new_task_pearson'])}")
    click.echo(f"    retention track Pearson: {_num(e['retention_pearson'])}   "
               f"retention ratio: {_num(e['retention_ratio'])}")
    for key, value in e["test_metrics"].items():
        click.echo(f"    base test {key}: {_num(value)}")
    click.echo("  checksums (model.yaml args):")
    for label, ok in lib.verify_entry(entry).items():
        click.echo(f"    {label}: {'ok' if ok else 'MISMATCH (the entry will refuse to load)'}")
    published = e["published"]
    if published:
        click.echo(f"  published {published.get('time', '?')} from {published.get('source', '?')} "
                   f"with genocl {published.get('genocl_version', '?')}")


@zoo.command("test")
@click.argument("name")
@ZOO_OPTION
@user_errors
def test(name, zoo_dir) -> None:
    """Run Kipoi's own `kipoi test` on an entry, offline.

    \b
    Example:
      genocl zoo test enformer-mini/base-v1 --zoo model_zoo
    """
    from genocl_plugin import zoo as lib

    lib.kipoi_test(lib.find_entry(zoo_dir, name))
    click.echo(f"{name}: kipoi test passed (checksums, schema, example -> expected outputs)")


@zoo.command("register")
@ZOO_OPTION
@click.option("--kipoi-config", default=None, type=click.Path(),
              help="Kipoi config file to edit (default: ~/.kipoi/config.yaml).")
@user_errors
def register(zoo_dir, kipoi_config) -> None:
    """Add the zoo to Kipoi's config as the local source "genocl".

    \b
    Example:
      genocl zoo register --zoo model_zoo
      python -c 'import kipoi; kipoi.get_model("enformer-mini/base-v1", source="genocl")'
    """
    from genocl_plugin import zoo as lib

    path = lib.register_source(zoo_dir, kipoi_config)
    click.echo(f"wrote {path}: source '{lib.SOURCE_NAME}' -> {zoo_dir}")


def _num(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float | int) else str(value)
