"""What a long run is doing: stage lines and progress lines on stderr (issue 31).

- :class:`StageLog` / :func:`stage`: one line on stderr when a stage starts, with its counts, and
  its elapsed time when it ends::

      [stage 1/8] loading the model (procapnet) ... 0.4 s
      [stage 5/8] training (1 epoch x 2 batches of 8) ...
      <Lightning's progress bar>
      [stage 5/8] training: done in 6.2 s

  The start line stays open until the stage ends; when anything else is written to stdout or
  stderr first (a progress bar, a warning, a print), the line is ended there and the stage's
  time comes on a line of its own. Stages opened inside another one (a strategy estimating its
  importances at the start of training) are numbered under it (``[stage 5.1/8]``). The log keeps
  ``{"name", "seconds"}`` of every finished stage (``metrics.json``'s ``stages``).
- :class:`Progress` / :func:`progress`: inside a stage, a rich bar with rate and ETA when stderr is
  a terminal; otherwise a plain line every ``GENOCL_PROGRESS_INTERVAL`` seconds (default 30; 0:
  after every step) with done/total, rate and ETA, so a redirected stderr shows progress too.
- :func:`format_rate`, :func:`format_duration`: rates with significant digits (``0.0056 s`` never
  becomes ``0.0``; slower than one per second reads ``180 s/variant``).

Nothing here imports torch; rich is imported only for a terminal's bar. Processes started by
Lightning's DDP launcher for ranks > 0 print nothing (rank 0 speaks for the run).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator

INTERVAL_ENV = "GENOCL_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 30.0

# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------


def _sig(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits, trailing zeros dropped, thousands separated."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    decimals = digits - 1 - math.floor(math.log10(abs(value)))
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def plural(unit: str, n: float = 2) -> str:
    """``variant`` -> ``variants`` (``batch`` -> ``batches``); unchanged for exactly one."""
    if n == 1 or not unit:
        return unit
    return unit + ("es" if unit.endswith(("s", "x", "ch", "sh")) else "s")


def format_rate(n: float, seconds: float, unit: str = "item") -> str:
    """A rate with significant digits: ``2.5 variants/s``, ``1,230 windows/s``, ``180 s/variant``.

    Slower than one ``unit`` per second it is given as seconds per unit (never ``0.0 units/s``);
    nothing done is ``0 units/s``; no time elapsed is ``n/a units/s``.
    """
    units = plural(unit)
    if not (seconds > 0 and math.isfinite(seconds)):
        return f"n/a {units}/s"
    if n <= 0:
        return f"0 {units}/s"
    rate = n / seconds
    if rate >= 1:
        return f"{_sig(rate)} {units}/s"
    return f"{_sig(seconds / n)} s/{unit}"


def format_duration(seconds: float) -> str:
    """``2.1 s``, ``3 min 05 s``, ``2 h 07 min``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "n/a"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def progress_interval() -> float:
    """Seconds between plain progress lines: ``GENOCL_PROGRESS_INTERVAL`` (default 30; 0: every step)."""
    text = os.environ.get(INTERVAL_ENV, "").strip()
    try:
        value = float(text) if text else DEFAULT_INTERVAL
    except ValueError:
        return DEFAULT_INTERVAL
    return value if math.isfinite(value) and value >= 0 else DEFAULT_INTERVAL


def _secondary_rank() -> bool:
    """A process Lightning's DDP launcher started for a rank > 0 (it re-runs the whole command)."""
    return os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"


# ---------------------------------------------------------------------------------------------
# Writing to stderr around an open stage line
# ---------------------------------------------------------------------------------------------

_lock = threading.RLock()
_line: dict | None = None  # the open stage line: {"owner", "stream", "watches"}
# Watches taken out of sys.stdout / sys.stderr stay referenced here: print() holds a borrowed
# reference to sys.stdout while it writes, and the write that ends a stage line is what swaps the
# stream back, so a watch freed at that moment would crash the interpreter.
_retired: list = []


class _Watch:
    """Stands in for sys.stdout / sys.stderr while a stage line is open.

    The first write by anyone ends the stage line (a newline), so the other output starts on a
    line of its own. Afterwards it only passes writes through (objects that kept it, such as a
    progress bar's file, keep working).
    """

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text):
        if text and _line is not None:
            _end_line("\n")
        return self._stream.write(text)

    def writelines(self, lines):
        for text in lines:
            self.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _end_line(suffix: str, owner=None) -> bool:
    """End the open stage line with ``suffix`` (only ``owner``'s, if given); whether one was open."""
    global _line
    with _lock:
        if _line is None or (owner is not None and _line["owner"] is not owner):
            return False
        line, _line = _line, None
        for name, watch, original in line["watches"]:
            _retired.append(watch)
            if getattr(sys, name, None) is watch:
                setattr(sys, name, original)
        del _retired[:-16]
        with contextlib.suppress(ValueError, OSError, AttributeError):
            line["stream"].write(suffix)
            line["stream"].flush()
        return True


def _write(text: str, open_owner=None) -> None:
    """Write ``text`` to stderr (an open stage line is ended first).

    With ``open_owner`` the text is a stage line left open (no newline) until the stage ends or
    someone else writes.
    """
    global _line
    if _secondary_rank():
        return
    with _lock:
        _end_line("\n")
        stream = sys.stderr
        if stream is None:
            return
        try:
            stream.write(text)
            stream.flush()
        except (ValueError, OSError):
            return
        if open_owner is not None:
            watches = []
            for name in ("stdout", "stderr"):
                original = getattr(sys, name, None)
                if original is not None:
                    watch = _Watch(original)
                    setattr(sys, name, watch)
                    watches.append((name, watch, original))
            _line = {"owner": open_owner, "stream": stream, "watches": watches}


# ---------------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------------

_ACTIVE: list[StageLog] = []


class Stage:
    """One running stage (returned by :meth:`StageLog.stage`); set :attr:`note` to add a result."""

    def __init__(self, log: StageLog, name: str, detail: str, label: str, record: dict) -> None:
        self.log, self.name, self.detail, self.label, self.record = log, name, detail, label, record
        self.note = ""
        self.number = ""
        self.substages = 0
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def end(self, failed: bool = False) -> float:
        seconds = self.seconds
        self.record["seconds"] = round(seconds, 3)
        if failed:
            self.record["failed"] = True
        note = f": {self.note}" if self.note and not failed else ""
        took = f"failed after {format_duration(seconds)}" if failed else format_duration(seconds)
        if not _end_line(f" {took}{note}\n", owner=self):
            if not failed:
                took = f"done in {took}"
            _write(f"[{self.label}] {self.name}: {took}{note}\n")
        return seconds


class StageLog:
    """The numbered stages of one run, printed to stderr and recorded.

    Parameters
    ----------
    total
        Number of top-level stages the run will go through (``[stage i/total]``); None: unnumbered
        total (``[stage i]``). A run that goes through more raises it.

    Use :meth:`stage` for each stage; ``with log:`` makes the log the one that :func:`stage` (in
    code that does not know the log) attaches to between its stages too.
    """

    def __init__(self, total: int | None = None, numbered: bool = True) -> None:
        self.total, self.numbered = total, numbered
        self.records: list[dict] = []
        self._count = 0
        self._open: list[Stage] = []

    def __enter__(self) -> StageLog:
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc) -> None:
        for i in range(len(_ACTIVE) - 1, -1, -1):
            if _ACTIVE[i] is self:
                del _ACTIVE[i]
                break

    def begin(self, name: str, detail: str = "", own_line: bool = False) -> Stage:
        """Start a stage and print its line; end it with :meth:`Stage.end` (prefer :meth:`stage`)."""
        record: dict = {"name": name, "seconds": None}
        if self._open:
            parent = self._open[-1]
            parent.substages += 1
            number = f"{parent.number}.{parent.substages}"
            record["within"] = parent.name
        else:
            self._count += 1
            number = str(self._count)
            if self.total is not None:
                self.total = max(self.total, self._count)
        if not self.numbered:
            label = "stage"
        else:
            label = f"stage {number}/{self.total}" if self.total is not None else f"stage {number}"
        self.records.append(record)
        handle = Stage(self, name, detail, label, record)
        handle.number = number
        self._open.append(handle)
        text = f"[{label}] {name}" + (f" ({detail})" if detail else "") + " ..."
        if own_line:
            _write(text + "\n")
        else:
            _write(text, open_owner=handle)
        return handle

    @contextlib.contextmanager
    def stage(self, name: str, detail: str = "", own_line: bool = False) -> Iterator[Stage]:
        """A stage: its line on entry, its time on exit (``failed after`` on an exception).

        Parameters
        ----------
        name
            What the stage does (``loading the model``).
        detail
            Its counts, printed in parentheses (``640 windows``).
        own_line
            End the start line at once (for stages that print their own output, such as
            Lightning's training bar); the time then comes on a line of its own.
        """
        handle = self.begin(name, detail, own_line)
        _ACTIVE.append(self)
        try:
            yield handle
        except BaseException:
            handle.end(failed=True)
            raise
        else:
            handle.end()
        finally:
            if handle in self._open:
                self._open.remove(handle)
            if _ACTIVE and _ACTIVE[-1] is self:
                _ACTIVE.pop()

    def finished(self) -> list[dict]:
        """``{"name", "seconds"}`` (and ``within`` for a stage inside another) of each finished stage."""
        return [dict(r) for r in self.records if r["seconds"] is not None]


def current() -> StageLog | None:
    """The log of the run in progress (:func:`stage` attaches to it), or None."""
    return _ACTIVE[-1] if _ACTIVE else None


@contextlib.contextmanager
def stage(name: str, detail: str = "", own_line: bool = False) -> Iterator[Stage]:
    """A stage of the run in progress (inside its current stage, if one is open), else a lone one.

    For code that does not hold the run's :class:`StageLog` (strategies, the reference set's
    pseudo-targets, the VCF scoring loop). Outside any run it prints ``[stage] name ... 1.2 s``.
    """
    log = current() or StageLog(numbered=False)
    with log.stage(name, detail, own_line) as handle:
        yield handle


# ---------------------------------------------------------------------------------------------
# Progress within a stage
# ---------------------------------------------------------------------------------------------


class Progress:
    """Progress of a loop: a rich bar on a terminal, else plain lines at a steady interval.

    Parameters
    ----------
    total
        Units to do (None: unknown; no percentage or ETA).
    description
        What is being done (``scoring v.vcf``).
    unit
        Singular unit (``variant``).
    terminal
        Force the bar (True) or plain lines (False); default: whether stderr is a terminal.
    interval
        Seconds between plain lines (default: :func:`progress_interval`); 0: a line per update.
    enabled
        False: nothing is shown.

    Use as a context manager and call :meth:`update` (units done so far) or :meth:`advance`.
    """

    def __init__(self, total: int | None = None, description: str = "", unit: str = "item",
                 terminal: bool | None = None, interval: float | None = None, enabled: bool = True) -> None:
        self.total, self.description, self.unit = total, description, unit
        self.terminal, self.interval, self.enabled = terminal, interval, enabled
        self.done = 0
        self.mode = "off"
        self.start = time.perf_counter()
        self._bar = self._task = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Progress:
        self.start = time.perf_counter()
        if not self.enabled or _secondary_rank() or sys.stderr is None:
            return self
        terminal = self.terminal
        if terminal is None:
            try:
                terminal = sys.stderr.isatty()
            except (AttributeError, ValueError):
                terminal = False
        if terminal:
            self._start_bar()
            return self
        self.mode = "plain"
        if self.interval is None:
            self.interval = progress_interval()
        if self.interval > 0:
            self._thread = threading.Thread(target=self._heartbeat, name="genocl-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._bar is not None:
            with contextlib.suppress(Exception):
                self._bar.stop()
        self.mode = "off"

    # -- updates -------------------------------------------------------------------------------
    def update(self, done: int) -> None:
        """Set the units done so far."""
        self.done = done
        if self.mode == "bar":
            self._bar.update(self._task, completed=done, **self._fields())
        elif self.mode == "plain" and self.interval == 0:
            _write(self.line() + "\n")

    def advance(self, n: int = 1) -> None:
        """Add ``n`` units done."""
        self.update(self.done + n)

    # -- text ----------------------------------------------------------------------------------
    def eta(self) -> float | None:
        """Seconds left at the rate so far (None: unknown total or nothing done yet)."""
        if not self.total or self.done <= 0:
            return None
        return max(self.total - self.done, 0) * (time.perf_counter() - self.start) / self.done

    def line(self) -> str:
        """The plain progress line: done/total, rate, elapsed, ETA."""
        elapsed = time.perf_counter() - self.start
        units = plural(self.unit, self.total if self.total is not None else self.done)
        if self.total is not None:
            share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
            count = f"{self.done:,}/{self.total:,} {units}{share}"
        else:
            count = f"{self.done:,} {units}"
        eta = self.eta()
        tail = (f", ETA {format_duration(eta)}" if eta is not None
                else ", ETA unknown" if self.total else "")
        return (f"  {self.description}: {count}, {format_rate(self.done, elapsed, self.unit)}, "
                f"{format_duration(elapsed)} elapsed{tail}")

    def _fields(self) -> dict:
        elapsed = time.perf_counter() - self.start
        eta = self.eta()
        return {"rate": format_rate(self.done, elapsed, self.unit),
                "eta": f"ETA {format_duration(eta)}" if eta is not None else ""}

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.interval):
            _write(self.line() + "\n")

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        columns = [TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn(plural(self.unit)), TextColumn("{task.fields[rate]}"),
                   TextColumn("{task.fields[eta]}"), TimeElapsedColumn()]
        self._bar = RichProgress(*columns, console=Console(stderr=True), transient=True)
        self._task = self._bar.add_task(self.description, total=self.total, **self._fields())
        self._bar.start()
        self.mode = "bar"


def progress(iterable: Iterable, total: int | None = None, description: str = "", unit: str = "item",
             count: Callable[[object], int] | None = None, **options) -> Iterator:
    """Iterate ``iterable`` showing its :class:`Progress` (bar on a terminal, plain lines otherwise).

    Parameters
    ----------
    iterable
        The loop's items.
    total
        Units to do (default: ``len(iterable)`` when it has one).
    description, unit
        As in :class:`Progress`.
    count
        Units each item stands for (e.g. the windows of a batch); default 1.
    options
        ``terminal``, ``interval``, ``enabled`` of :class:`Progress`.
    """
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with Progress(total, description, unit, **options) as bar:
        for item in iterable:
            yield item
            bar.advance(count(item) if count is not None else 1)


progress_iter = progress  # for modules whose functions take a ``progress`` flag
