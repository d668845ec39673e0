"""The ``genocl`` command line: thin click commands that parse, call the library, print.

torch / grelu / kipoi are imported inside the commands, so ``genocl --help`` stays fast.
Every :class:`~genocl_plugin.errors.GenoclInputError` becomes one line on stderr and exit 2.
"""

from __future__ import annotations

import functools
import sys

import click

from genocl_cli.params import OneLineGroup
from genocl_plugin.errors import GenoclInputError


def user_errors(func):
    """Turn input errors and running out of memory into one line on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except GenoclInputError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        except (MemoryError, RuntimeError) as err:
            # torch.OutOfMemoryError (CUDA) is a RuntimeError; the CPU allocator raises a
            # RuntimeError "DefaultCPUAllocator: can't allocate memory". Only torch is
            # imported lazily by commands, so the check lives in genocl_plugin.training.hardware.
            from genocl_plugin.training.hardware import is_out_of_memory, out_of_memory_message

            if not is_out_of_memory(err):
                raise
            click.echo(f"error: {out_of_memory_message(err)}", err=True)
            sys.exit(2)

    return wrapper


def trust_checkpoint_option(func):
    """``--trust-checkpoint``: load pickled checkpoints as full pickles (off by default)."""
    return click.option(
        "--trust-checkpoint", is_flag=True,
        help="Load legacy pickled checkpoints (.ckpt/.pt) that hold objects outside genocl's "
             "allow-list. A pickle can run any code: only for files you trust.")(func)


def head_option(func):
    """``--head``: which output head of an enformer-pytorch / borzoi-pytorch directory to use."""
    return click.option(
        "--head", default=None,
        help="enformer-pytorch / borzoi-pytorch directories: output head, human (default; 5,313 / 7,611 "
             "tracks) or mouse (1,643 / 2,608).")(func)


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="genocl")
def main() -> None:
    """genocl: continual learning for genomic sequence-to-function models.

    \b
    Example:
      genocl update --model enformer --out runs/enhancers
      genocl screen from-satmut --table elements.tsv.gz --fasta elements.fa --out mpra.h5ad
    """


from genocl_cli import evaluate as _evaluate_cmd  # noqa: E402
from genocl_cli import screen as _screen  # noqa: E402
from genocl_cli import train as _train  # noqa: E402
from genocl_cli import variants as _variants  # noqa: E402
from genocl_cli import zoo as _zoo  # noqa: E402

main.add_command(_screen.screen)
main.add_command(_evaluate_cmd.evaluate)
main.add_command(_train.update)
main.add_command(_train.pretrain)
main.add_command(_variants.score_vcf)
main.add_command(_zoo.publish)
main.add_command(_zoo.zoo)
