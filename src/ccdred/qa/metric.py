"""`Metric`: one answered question, its thresholds and its verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["Metric", "VERDICTS", "judge"]

VERDICTS = ("pass", "warn", "fail", "info")


@dataclass(frozen=True)
class Metric:
    """One answered question."""

    name: str
    question: str
    value: float
    verdict: str
    threshold: str
    """How the verdict was decided, e.g. ``pass <= 0.01 < warn <= 0.03 < fail``."""
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


def judge(value: float, pass_below: float, warn_below: float) -> tuple[str, str]:
    """Return the verdict for a value where smaller is better, and its thresholds."""
    threshold = f"pass <= {pass_below:g} < warn <= {warn_below:g} < fail"
    if not np.isfinite(value):
        return "fail", threshold
    if value <= pass_below:
        return "pass", threshold
    return ("warn" if value <= warn_below else "fail"), threshold
