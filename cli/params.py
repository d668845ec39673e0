"""Click parameter types that check numbers and strings at the boundary.

Each type fails with a message that names the bad value, what is allowed and the fix; the
top-level group (:class:`OneLineGroup`) prints any click usage error as one line with exit
status 2, so a bad value never reaches the library (or Lightning, where ``--epochs -1``
would mean "train forever").
"""

from __future__ import annotations

import math
import sys

import click


class OneLineGroup(click.Group):
    """A click group whose usage errors are one ``error:`` line on stderr and exit status 2.

    click's own handling prints the multi-line usage block; genocl's promise is one line
    naming the option and the fix.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            return super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)
        except click.exceptions.Exit as err:
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        except click.UsageError as err:
            click.echo(f"error: {usage_message(err)}", err=True)
            sys.exit(2)
        except click.ClickException as err:
            click.echo(f"error: {' '.join(err.format_message().split())}", err=True)
            sys.exit(err.exit_code)


def usage_message(err: click.UsageError) -> str:
    """One line for a click usage error: the option, the problem and where the fix is."""
    command = err.ctx.command_path if err.ctx is not None else "genocl"
    if isinstance(err, click.BadParameter) and not isinstance(err, click.MissingParameter) \
            and err.param is not None:
        hint = err.param_hint or (err.param.get_error_hint(err.ctx) if err.ctx else err.param.name)
        if isinstance(hint, list | tuple):
            hint = " / ".join(hint)
        text = " ".join(str(err.message).split()).rstrip(".")
        if "fix:" not in text:
            text += f"; fix: see `{command} --help`"
        return f"{str(hint).strip(chr(39))}: {text}"
    text = " ".join(err.format_message().split()).rstrip(".")
    return f"{text}; fix: see `{command} --help`"


class Number(click.ParamType):
    """An int or float in a range, finite, with the fix in the error message.

    Parameters
    ----------
    kind
        ``int`` or ``float``.
    low, high
        Bounds (None: unbounded).
    low_open, high_open
        Whether the bound itself is excluded.
    fix
        What to pass instead (shown after ``fix:``).
    """

    def __init__(self, kind: type = int, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, fix: str = "") -> None:
        self.kind = kind
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        self.fix = fix
        self.name = self.describe()

    def describe(self) -> str:
        """``integer >= 1``, ``number in (0, 1)`` ..."""
        noun = "integer" if self.kind is int else "number"
        if self.low is not None and self.high is not None:
            return (f"{noun} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{noun} {'<' if self.high_open else '<='} {self.high:g}"
        return noun

    def article(self) -> str:
        """The description with its article (``an integer >= 1``)."""
        text = self.describe()
        return ("an " if text[0] in "aeiou" else "a ") + text

    def convert(self, value, param, ctx):
        if isinstance(value, bool):
            self.fail(f"{value!r} is not {self.article()}; fix: {self.fix}", param, ctx)
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            try:
                number = int(text) if self.kind is int else float(text)
            except ValueError:
                self.fail(f"{value!r} is not {self.article()}; fix: {self.fix}", param, ctx)
        if self.kind is int and isinstance(number, float):
            if not number.is_integer():
                self.fail(f"{value!r} is not {self.article()}; fix: {self.fix}", param, ctx)
            number = int(number)
        number = self.kind(number)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not finite; fix: {self.fix}", param, ctx)
        too_low = self.low is not None and (number <= self.low if self.low_open else number < self.low)
        too_high = self.high is not None and (number >= self.high if self.high_open else number > self.high)
        if too_low or too_high:
            self.fail(f"{value!r} is not {self.article()}; fix: {self.fix}", param, ctx)
        return number


def positive_int(fix: str) -> Number:
    """An integer >= 1."""
    return Number(int, low=1, fix=fix)


def non_negative_int(fix: str) -> Number:
    """An integer >= 0."""
    return Number(int, low=0, fix=fix)


def positive_float(fix: str) -> Number:
    """A finite number > 0."""
    return Number(float, low=0, low_open=True, fix=fix)


def non_negative_float(fix: str) -> Number:
    """A finite number >= 0."""
    return Number(float, low=0, fix=fix)


class Devices(click.ParamType):
    """Lightning ``devices``: ``auto``, a positive count, or a comma list of device ids."""

    name = "devices"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        text = str(value).strip()
        fix = "pass auto, a number of devices >= 1 (e.g. 2), or device ids such as 0,1"
        if text == "auto":
            return text
        if text.isdigit():
            if int(text) < 1:
                self.fail(f"{value!r}: the number of devices must be >= 1; fix: {fix}", param, ctx)
            return int(text)
        parts = [p.strip() for p in text.split(",")]
        if len(parts) > 1 and all(p.isdigit() for p in parts) and len(set(parts)) == len(parts):
            return [int(p) for p in parts]
        self.fail(f"{value!r} is not auto, a count or a list of ids; fix: {fix}", param, ctx)


class Fraction(Number):
    """A number strictly between 0 and 1."""

    def __init__(self, fix: str) -> None:
        super().__init__(float, low=0, high=1, low_open=True, high_open=True, fix=fix)
