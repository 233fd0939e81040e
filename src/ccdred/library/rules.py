"""When a library master may serve a night (`Rules`), and why one was chosen (`Match`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["Rules", "Match", "Criteria", "refusal", "reason", "days_apart", "exposure_rank",
           "parse_date", "ANY"]


class _Any:
    """Marks a criterion the caller did not ask for."""

    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()


@dataclass(frozen=True)
class Rules:
    """When a library master may serve a night that lacks its own.

    Always: same kind, instrument, shape and binning, never one marked bad, nearest in time.
    """

    validity_days: float = 30.0
    """Largest time between the master's inputs and the night."""
    temperature_tolerance: float = 2.0
    """Largest difference (deg C) between a master's and the night's sensor temperature."""

    def __post_init__(self) -> None:
        for name in ("validity_days", "temperature_tolerance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")


@dataclass(frozen=True)
class Match:
    """A library master chosen for a night, and why (what is recorded in the plan)."""

    id: int
    path: str
    sha256: str
    reason: str
    exptime: float | None = None
    darktime: float | None = None
    scalable: bool = False


@dataclass(frozen=True)
class Criteria:
    """What a master must match for one night, beyond kind, camera and setup.

    ``filter`` is `ANY` when the filter does not matter (None or '' ask for no filter);
    ``exptime``, when given, asks for the same exposure or a scalable master; ``temperature``,
    when given, must be within the rules' tolerance of a master's known temperature.
    """

    night: datetime | None
    filter: object = ANY
    exptime: float | None = None
    temperature: float | None = None
    scalable_ok: bool = True


def parse_date(text: str | None) -> datetime | None:
    """Read an ISO date as an aware datetime (UTC when no zone is given), or None."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def days_apart(mid: datetime | None, night: datetime | None) -> float:
    """Return the days between a master's middle date and the night (inf when unknown)."""
    if mid is None or night is None:
        return math.inf
    return abs((mid - night).total_seconds()) / 86400.0


def exposure_rank(entry_exptime: float | None, exptime: float | None) -> float:
    """Rank how far a master's exposure is from the one wanted (log ratio; 0 if unset)."""
    if exptime is None or not entry_exptime:
        return 0.0
    return abs(math.log(max(exptime, 1e-3) / entry_exptime))


def _same_exposure(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= 0.01 * max(abs(a), abs(b), 1e-3)


def refusal(entry, wanted: Criteria, rules: Rules) -> str:
    """Why library ``entry`` cannot serve, or '' when it can."""
    if entry.verdict == "bad":
        return f"marked bad ({entry.note})" if entry.note else "marked bad"
    if not Path(entry.path).is_file():
        return "file no longer exists"
    days = days_apart(entry.date_mid, wanted.night)
    if not days <= rules.validity_days:
        return ("no date to check the validity window" if math.isinf(days)
                else f"{days:.1f} days away (window {rules.validity_days:g})")
    if wanted.filter is not ANY and (entry.filter or "") != (wanted.filter or ""):
        return f"filter {entry.filter!r}, not {wanted.filter!r}"
    if wanted.exptime is not None and not _same_exposure(entry.exptime, wanted.exptime) and not (
            entry.scalable and wanted.scalable_ok):
        return f"{entry.exptime or 0:g}s, not {wanted.exptime:g}s, and cannot be scaled"
    if entry.temperature is not None and wanted.temperature is not None and (
            abs(entry.temperature - wanted.temperature) > rules.temperature_tolerance):
        return (f"{entry.temperature:+.1f} C, night {wanted.temperature:+.1f} C "
                f"(tolerance {rules.temperature_tolerance:g})")
    return ""


def reason(entry, wanted: Criteria) -> str:
    """Why ``entry`` was chosen, in a few words for the plan."""
    mid = entry.date_mid
    when = "earlier" if mid is not None and wanted.night is not None and mid < wanted.night \
        else "later"
    parts = [f"library #{entry.id}", f"{days_apart(mid, wanted.night):.1f} days {when}"]
    if wanted.exptime is not None:
        parts.append("same exposure" if _same_exposure(entry.exptime, wanted.exptime)
                     else f"scaled from {entry.exptime:g}s")
        if entry.temperature is not None:
            parts.append(f"{entry.temperature:+.1f} C")
    if wanted.filter is not ANY:
        parts.append(f"filter {entry.filter}")
    if entry.verdict != "ok":
        parts.append(f"verdict {entry.verdict}: {entry.note}")
    return ", ".join(parts)
