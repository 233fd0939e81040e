"""Exceptions that name the file and the problem."""

from __future__ import annotations

from pathlib import Path

__all__ = ["BadInputError", "OutputError", "WorkerLostError"]


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

    def __reduce__(self) -> tuple:
        # Errors cross process boundaries (local workers, Dask): rebuild from both fields.
        return (type(self), (self.path, self.problem))


class OutputError(OSError):
    """An output cannot be written (full disk, no permission...); names the path and why.

    Parameters
    ----------
    path : str or Path
        The file or directory that could not be written.
    problem : str
        The system's reason.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"cannot write {self.path}: {problem}")

    def __reduce__(self) -> tuple:
        return (type(self), (self.path, self.problem))


class WorkerLostError(RuntimeError):
    """A worker process died (killed, out of memory) before it finished its task.

    Products already written are complete (every write is atomic), so running the same
    command again resumes the work.
    """
