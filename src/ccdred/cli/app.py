"""The typer app, its consoles, the error policy and the option groups commands share."""

from __future__ import annotations

import functools
import inspect
import signal
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
import typer.core
from rich.console import Console
from rich.markup import escape

__all__ = ["app", "Typer", "console", "err_console", "handle_errors", "combine_option_group",
           "stop_on", "raise_if_interrupted", "parse_size", "note_first_compile", "EXIT_OK",
           "EXIT_FAILED", "EXIT_BAD_INPUT"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

def _bare_flags(params: list[Any]) -> None:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


def _reflowed(help_text: str | None) -> str | None:
    r"""Join the lines of each paragraph of a docstring, so the terminal wraps them.

    Typer keeps a docstring's line breaks after its first paragraph: lines wrapped for the
    source then break mid-sentence on the screen. A paragraph marked ``\b`` keeps its lines.
    """
    if not help_text:
        return help_text
    paragraphs = inspect.cleandoc(help_text).split("\n\n")
    return "\n\n".join(text if text.startswith("\b") else " ".join(text.split("\n"))
                       for text in paragraphs)


class _FlagCommand(typer.core.TyperCommand):
    """A command whose help shows plain flags (``--hist``, ``--repair/--no-repair``) bare.

    Typer renders every option's type in the help, ``<bool>`` included, which reads as if a
    flag took a value. A flag's metavar is made empty, so its type column stays blank. The
    help's paragraphs are reflowed (`_reflowed`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _bare_flags(self.params)
        self.help = _reflowed(self.help)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        _bare_flags([option] if option is not None else [])
        return option


class _FlagGroup(typer.core.TyperGroup):
    """A command group whose ``--help`` is shown bare (see `_FlagCommand`)."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        _bare_flags([option] if option is not None else [])
        return option


class Typer(typer.Typer):
    """`typer.Typer` whose commands show plain flags without a ``<bool>`` type."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("cls", _FlagGroup)
        super().__init__(*args, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        """Register a command (see `typer.Typer.command`), as a `_FlagCommand` by default."""
        kwargs.setdefault("cls", _FlagCommand)
        return super().command(*args, **kwargs)


app = Typer(
    name="ccdred",
    help=("Reduce a night of raw CCD frames into science-ready images.\n\n"
          "Exit status: 0 success; 1 the work failed; 2 bad input or arguments "
          "(nothing written); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM)."),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH)


def note_first_compile() -> None:
    """Say so when this run compiles the kernels (once per machine), instead of seeming stuck."""
    from ..kernels.cache import kernels_cached

    if not kernels_cached():
        err_console.print("Compiling ccdred's kernels for this machine: the first run takes a "
                          "minute or two longer; later runs load them from the cache.")


class Interrupted(KeyboardInterrupt):
    """A signal that ends a run as Ctrl-C does (SIGTERM): one line, exit status 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_RECEIVED: list[int] = []
"""Signals `stop_on` handled in this process, so a run whose interrupt was swallowed still
ends with 128 + signum (an exception raised while Python runs a finaliser is only printed)."""


def stop_on(signum: int, frame: Any = None) -> None:
    """Signal handler: end the run like Ctrl-C (workers stopped, temporary files removed)."""
    _RECEIVED.append(signum)
    raise Interrupted(signum)


def raise_if_interrupted() -> None:
    """Raise `Interrupted` again if a signal came whose exception was swallowed on its way."""
    if _RECEIVED:
        raise Interrupted(_RECEIVED[0])


def _interrupted(signum: int) -> typer.Exit:
    err_console.print(f"[bold red]interrupted[/] ({signal.Signals(signum).name}): "
                      f"what was written is complete; run the same command again to "
                      f"resume", soft_wrap=True)
    return typer.Exit(128 + signum)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn errors into one line and the exit status: 2 for bad input, 1 for failed work."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..errors import BadInputError, WorkerLostError

        try:
            result = func(*args, **kwargs)
        except KeyboardInterrupt as err:
            raise _interrupted(getattr(err, "signum", signal.SIGINT)) from None
        except WorkerLostError as err:
            err_console.print(f"[bold red]failed:[/] {escape(str(err))}", soft_wrap=True)
            raise typer.Exit(EXIT_FAILED) from None
        except BadInputError as err:
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except (ValueError, TypeError) as err:
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except OSError as err:
            err_console.print(f"[bold red]failed:[/] {escape(str(err))}", soft_wrap=True)
            raise typer.Exit(EXIT_FAILED) from None
        if _RECEIVED:  # the interrupt was swallowed on its way (in a finaliser): say it anyway
            raise _interrupted(_RECEIVED[0])
        return result

    return wrapper


def parse_size(text: str) -> int:
    """Parse a memory size such as ``512M``, ``2G`` or ``1500000`` (bytes)."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    try:
        if cleaned and cleaned[-1] in units:
            return int(float(cleaned[:-1]) * units[cleaned[-1]])
        return int(float(cleaned))
    except (ValueError, OverflowError) as err:
        raise ValueError(f"memory size {text!r} is not a number of bytes like 500M or 2G"
                         ) from err


def _format_size(size: int) -> str:
    for unit, factor in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _combine_parameters() -> list[inspect.Parameter]:
    """Return the combine options of every combining command, with `CombineOptions`' defaults."""
    from ..stacking import CombineOptions

    default = CombineOptions()
    specs: list[tuple[str, Any, str]] = [
        ("method", str, "Combine estimator: mean, median or sum."),
        ("reject", str, "Rejection: sigclip, none, minmax, pclip, winsorized or ccdclip."),
        ("sigma_low", float, "Lower clipping threshold (sigma)."),
        ("sigma_high", float, "Upper clipping threshold (sigma)."),
        ("maxiters", int, "Clipping passes (0: until stable)."),
        ("centre", str, "Clipping centre: median or mean."),
        ("spread", str, "Clipping spread: pooled (pixel MAD, floored by the row's noise), mad "
                        "or std."),
        ("nlow", int, "minmax: lowest values dropped."),
        ("nhigh", int, "minmax: highest values dropped."),
        ("nkeep", int, "Never keep fewer values than this."),
    ]
    parameters = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                    default=getattr(default, name),
                                    annotation=Annotated[kind, typer.Option(help=text)])
                  for name, kind, text in specs]
    parameters.append(inspect.Parameter(
        "memory_limit", inspect.Parameter.KEYWORD_ONLY,
        default=_format_size(default.memory_limit),
        annotation=Annotated[str, typer.Option(help="Working memory of a combine, e.g. 500M, "
                                                    "2G.")]))
    return parameters


_GROUP = [p.name for p in _combine_parameters()]


def combine_option_group(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the shared combine options, handed to it as ``combine_options``.

    The command declares a ``combine_options`` parameter; the command line gets ``--method``,
    ``--reject``, ``--sigma-low``... instead, declared once here with `CombineOptions`'
    defaults, and a bad value is refused before any work (exit status 2).
    """
    signature = inspect.signature(func, eval_str=True)
    kept = [p for p in signature.parameters.values() if p.name != "combine_options"]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..stacking import CombineOptions

        values = {name: kwargs.pop(name) for name in _GROUP}
        values["memory_limit"] = parse_size(values["memory_limit"])
        kwargs["combine_options"] = CombineOptions(**values)
        return func(*args, **kwargs)

    parameters = kept + _combine_parameters()
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    del wrapper.__wrapped__
    return wrapper
