"""Exceptions that name the file and the problem."""

from __future__ import annotations

from pathlib import Path

__all__ = ["BadInputError"]


class BadInputError(ValueError):
    """An input file cannot be used; the message names the file and why.

    Parameters
    ----------
    path : str or Path
        The offending file.
    problem : str
        What is wrong with it, in words a user can act on.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
