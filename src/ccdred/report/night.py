"""The night over time: one figure of every science frame's numbers, masters marked."""

from __future__ import annotations

from typing import Any

import numpy as np

from .sections import Section

__all__ = ["night_figure"]


def _times(sections: list[Section]) -> list[Any]:
    """Each section's DATE-OBS as a naive UTC datetime (None when missing or unreadable)."""
    from datetime import UTC, datetime

    out = []
    for section in sections:
        try:
            when = datetime.fromisoformat(str(section.stats.get("time")))
        except ValueError:
            out.append(None)
            continue
        out.append(when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when)
    return out


def night_figure(sections: list[Section]) -> Any:
    """Draw the night over time, one point per science frame, masters as dashed lines.

    Panels: sky level, sky noise against the noise model, cosmic-ray pixels, flatness
    residual (in sky noise) and saturated pixels. Frames without a DATE-OBS are drawn in
    file order instead.
    """
    from matplotlib.figure import Figure

    science = [s for s in sections if s.kind == "science"]
    master_sections = [s for s in sections if s.kind == "master"]
    times = _times(science)
    by_time = all(t is not None for t in times) and bool(times)
    x = times if by_time else list(range(1, len(science) + 1))
    # A fixed layout: matplotlib's constrained layout took half of the figure's time.
    fig = Figure(figsize=(11, 7.5))
    axes = fig.subplots(5, 1, sharex=True)
    fig.subplots_adjust(left=0.085, right=0.985, top=0.95, bottom=0.08, hspace=0.12)

    def values(key: str) -> np.ndarray:
        return np.array([np.nan if s.stats.get(key) is None else float(s.stats[key])
                         for s in science], dtype=float)

    panels = [("sky", "sky level (ADU)"), ("noise", "sky noise (ADU)"),
              ("cosmics", "cosmic-ray pixels"), ("flatness", "flatness residual\n(sky noise)"),
              ("saturated", "saturated pixels")]
    colours = {"pass": "tab:green", "info": "tab:blue", "warn": "tab:orange", "fail": "tab:red"}
    verdicts = [str(s.stats.get("verdict", "pass")) for s in science]
    for ax, (key, label) in zip(axes, panels, strict=True):
        y = values(key)
        ax.plot(x, y, color="0.7", linewidth=0.8, zorder=1)
        ax.scatter(x, y, s=14, c=[colours.get(v, "k") for v in verdicts], zorder=2)
        if key == "noise":
            ax.plot(x, values("noise_model"), color="k", linestyle=":", linewidth=1,
                    label="noise model (sky photons + read noise)")
            ax.legend(fontsize=7, loc="upper right")
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    outside = []
    if by_time:
        outside = _mark_masters(fig, axes, master_sections, times)
    else:
        axes[-1].set_xlabel("science frame (file order; no DATE-OBS)")
    title = (f"the night: {len(science)} science frames (green pass, orange warn, red fail; "
             "dashed: masters taken meanwhile)")
    if outside:
        title += "\nmasters taken outside this span: " + ", ".join(outside)
        fig.subplots_adjust(top=0.93)
    axes[0].set_title(title, fontsize=9, y=1.0)
    return fig


def _mark_masters(fig: Any, axes: Any, master_sections: list[Section], times: list[Any]
                  ) -> list[str]:
    """Draw each master taken during the night as a dashed line; return those outside it."""
    from datetime import timedelta

    outside = []
    first, last = min(times), max(times)
    pad = max((last - first) * 0.03, timedelta(minutes=2))
    for section, when in zip(master_sections, _times(master_sections), strict=True):
        if when is None or not first - pad <= when <= last + pad:
            outside.append(f"{section.stats.get('name', '')} ({when:%Y-%m-%d %H:%M})"
                           if when else str(section.stats.get("name", "")))
            continue
        for ax in axes:
            ax.axvline(when, color="tab:purple", linestyle="--", linewidth=0.8, alpha=0.6)
        axes[0].annotate(section.stats.get("name", ""), (when, 1), xycoords=("data",
                         "axes fraction"), fontsize=7, rotation=90, va="top", ha="right",
                         color="tab:purple")
    axes[-1].set_xlim(first - pad, last + pad)
    axes[-1].set_xlabel("time (UTC, DATE-OBS)")
    fig.autofmt_xdate(bottom=0.11)
    return outside
