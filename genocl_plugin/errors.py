"""The one exception type that reaches users as a one-line message (exit status 2)."""

from __future__ import annotations


class GenoclInputError(ValueError):
    """Bad user input: a message naming the file, the field and the fix.

    The CLI prints ``error: <message>`` on stderr and exits with status 2, never a traceback.
    """


def input_error(path: object, field: str, problem: str, fix: str) -> GenoclInputError:
    """Build a :class:`GenoclInputError` in the project's one-line shape.

    Parameters
    ----------
    path
        The file (or option) the problem was found in.
    field
        The field, column or key that is wrong.
    problem
        What is wrong with it.
    fix
        What the user should do.

    Returns
    -------
    GenoclInputError
        The error, ready to raise.
    """
    return GenoclInputError(f"{path}: {field}: {problem}; fix: {fix}")
