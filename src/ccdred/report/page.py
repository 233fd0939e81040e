"""The report's HTML: the night at a glance, grouped warnings, the frames table, sections."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..pipeline.products import Manifest
from .sections import SEVERITY, Section

__all__ = ["page_html", "findings", "finding_html"]


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222;
       padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
.pass { background: #e3f4e3; } .warn { background: #fff3cd; } .fail { background: #f8d7da; }
.info { background: #e7eef8; } img { max-width: 100%; border: 1px solid #eee; }
.warnings li { margin: 0.4em 0; } .muted { color: #666; font-size: 0.9em; }
.counts span { display: inline-block; margin: 0 1.2em 0.4em 0; font-size: 1.05em; }
.counts b { font-size: 1.3em; }
.scroll { overflow-x: auto; } table.frames { font-size: 0.82em; }
table.frames td { vertical-align: middle; } table.frames td.name { word-break: break-all; }
table.frames td.num { text-align: right; }
table.frames th { cursor: pointer; user-select: none; background: #f4f4f4; }
table.frames th:after { content: " \\2195"; color: #aaa; }
table.frames img { width: 120px; border: 0; display: block; }
.figure img { max-width: 880px; } details { margin: 0.2em 0 0.2em 1em; }
"""

_SORT_JS = """
document.querySelectorAll('table.frames th').forEach(function (th, column) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0];
    var rows = Array.from(body.rows);
    var up = th.dataset.order !== 'up';
    th.dataset.order = up ? 'up' : 'down';
    rows.sort(function (a, b) {
      var x = a.cells[column].dataset.v, y = b.cells[column].dataset.v;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (isNaN(nx) || isNaN(ny)) ? String(x).localeCompare(String(y)) : nx - ny;
      return up ? c : -c;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _value(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else _e(value)


@dataclass
class _Finding:
    """One kind of finding and the sections it concerns."""

    verdict: str
    text: str
    sections: list[Section] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)


def findings(manifest: Manifest, sections: list[Section]) -> list[_Finding]:
    """Every warning, grouped by kind (one check and verdict, or one message), worst first."""
    groups: dict[tuple[str, str], _Finding] = {}
    for section in sections:
        for metric in section.metrics:
            if metric["verdict"] not in ("warn", "fail"):
                continue
            key = (metric["verdict"], metric["name"])
            finding = groups.setdefault(key, _Finding(
                metric["verdict"], f"{metric['name']}: {metric['question']} "
                                   f"({metric['threshold']})"))
            finding.sections.append(section)
            finding.examples.append(f"{section.title}: {metric['detail']}")
    found = sorted(groups.values(), key=lambda f: (-SEVERITY[f.verdict], -len(f.sections)))
    skipped = manifest.plan.get("skipped", [])
    if skipped:
        found.append(_Finding("warn", f"unusable file{'s' if len(skipped) > 1 else ''} skipped",
                              examples=[f"{i['path']}: {i['reason']}" for i in skipped]))
    messages: dict[str, int] = {}
    for text in [*manifest.plan.get("warnings", []), *manifest.warnings]:
        messages[str(text)] = messages.get(str(text), 0) + 1
    found += [_Finding("warn", text if n == 1 else f"{text} ({n} times)")
              for text, n in messages.items()]
    return found


def finding_html(finding: _Finding) -> str:
    """Return one finding as a list item: verdict, frame count, what, and which and why."""
    count = len(finding.sections)
    kinds = {s.kind for s in finding.sections}
    noun = "master" if kinds == {"master"} else "frame" if kinds == {"science"} else "product"
    frames = f"{count} {noun}{'s' if count != 1 else ''}: " if count else ""
    links = " ".join(f"<a href='#{_e(s.anchor)}'>{_e(s.title.split(': ', 1)[-1])}</a>"
                     for s in finding.sections)
    examples = "".join(f"<li>{_e(x)}</li>" for x in finding.examples[:50])
    more = (f"<li>... and {len(finding.examples) - 50} more</li>"
            if len(finding.examples) > 50 else "")
    details = ""
    if links or examples:
        details = (f"<details><summary>which and why</summary>"
                   f"{'<p>' + links + '</p>' if links else ''}"
                   f"{'<ul>' + examples + more + '</ul>' if examples else ''}</details>")
    return (f"<li class='{_e(finding.verdict)}'><b>{_e(finding.verdict)}</b> {frames}"
            f"{_e(finding.text)}{details}</li>")


def _counts_html(manifest: Manifest, sections: list[Section]) -> str:
    science = [s for s in sections if s.kind == "science"]
    masters = [s for s in sections if s.kind == "master"]
    verdicts: dict[str, int] = {}
    for section in science:
        verdict = str(section.stats.get("verdict", "pass"))
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    skipped = len(manifest.plan.get("skipped", []))
    parts = [f"<span><b>{len(science)}</b> science frames</span>",
             f"<span><b>{len(masters)}</b> masters</span>"]
    parts += [f"<span class='{v}'><b>{verdicts[v]}</b> frames {v}</span>"
              for v in ("fail", "warn", "info", "pass") if verdicts.get(v)]
    if skipped:
        parts.append(f"<span class='warn'><b>{skipped}</b> files skipped</span>")
    return f"<p class='counts'>{''.join(parts)}</p>"


def _frames_table(sections: list[Section]) -> str:
    columns = [("frame", None), ("time (UTC)", None), ("exp (s)", "exptime"),
               ("filter", None), ("sky (ADU)", "sky"), ("noise (ADU)", "noise"),
               ("noise / model", None), ("CR pixels", "cosmics"), ("saturated", "saturated"),
               ("flatness (noise)", "flatness"), ("verdict", None)]
    head = "<th>thumbnail</th>" + "".join(f"<th>{_e(name)}</th>" for name, _ in columns)
    rows = []
    for section in sections:
        st = section.stats
        name = section.title.split(": ", 1)[-1]
        ratio = (st["noise"] / st["noise_model"]
                 if st.get("noise") is not None and st.get("noise_model") else None)
        verdict = str(st.get("verdict", "pass"))

        def num(value: Any) -> str:
            sort = "" if value is None else f"{float(value):.6g}"
            return f"<td class='num' data-v='{sort}'>{_value(value)}</td>"

        cells = [f"<td data-v=''><a href='#{_e(section.anchor)}'>"
                 f"<img src='{_e(section.thumbnail)}' alt='{_e(name)}' loading='lazy'></a></td>",
                 f"<td class='name' data-v='{_e(name)}'><a href='#{_e(section.anchor)}'>{_e(name)}"
                 "</a></td>",
                 f"<td data-v='{_e(st.get('time') or '')}'>"
                 f"{_e(str(st.get('time') or '-')[:19].replace('T', ' '))}</td>",
                 num(st.get("exptime")),
                 f"<td data-v='{_e(st.get('filter') or '')}'>{_e(st.get('filter') or '-')}</td>",
                 num(st.get("sky")), num(st.get("noise")), num(ratio), num(st.get("cosmics")),
                 num(st.get("saturated")), num(st.get("flatness")),
                 f"<td class='{_e(verdict)}' data-v='{SEVERITY.get(verdict, 0)}'>"
                 f"{_e(verdict)}</td>"]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (f"<div class='scroll'><table class='frames'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>"
            "<p class='muted'>Click a column heading to sort; a thumbnail or name opens the "
            "frame's section.</p>")


def page_html(manifest: Manifest, sections: list[Section]) -> str:
    """Return the report page: the night at a glance first, then plan, masters and frames."""
    plan = manifest.plan
    found = findings(manifest, sections)
    science = [s for s in sections if s.kind == "science"]
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             "<title>ccdred night report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>ccdred night report</h1>",
             f"<p class='muted'>raw: {_e(plan['raw_dir'])} &middot; ccdred "
             f"{_e(manifest.ccdred_version)} &middot; {_e(manifest.created)}</p>",
             "<h2 id='summary'>The night at a glance</h2>", _counts_html(manifest, sections),
             "<p><a href='night.png'><img src='night.png' alt='the night over time' "
             "style='max-width: 880px'></a></p>",
             "<h2 id='warnings'>Warnings</h2>"]
    if found:
        parts.append("<ul class='warnings'>" + "".join(finding_html(f) for f in found)
                     + "</ul>")
    else:
        parts.append("<p class='pass'>No warnings: no check warned or failed.</p>")
    if science:
        parts += ["<h2 id='frames'>Frames</h2>", _frames_table(science)]
    parts.append(_plan_html(manifest))
    for kind, heading in (("master", "Masters"), ("science", "Science frames")):
        parts.append(f"<h2>{heading}</h2>")
        for section in (s for s in sections if s.kind == kind):
            parts.append(_section_html(section))
    parts.append(f"<script>{_SORT_JS}</script></body></html>")
    return "\n".join(parts)


def _plan_html(manifest: Manifest) -> str:
    plan = manifest.plan
    noise = "".join(f"<li>{_e(k)}: gain {_value(float(v['gain']))} e-/ADU "
                    f"({_e(v['gain_source'])}); read noise {_value(float(v['read_noise']))} e- "
                    f"({_e(v['read_noise_source'])})</li>"
                    for k, v in manifest.noise.items())
    rows = "".join(f"<tr><td>{_e(m['file'])}</td><td>{_master_origin(m)}</td>"
                   f"<td>{_e(m.get('bias') or '')}</td></tr>" for m in plan["masters"])
    science = "".join(
        f"<tr><td>{_e(Path(s['input']).name)}</td><td>{_e(s.get('bias') or 'none')}</td>"
        f"<td>{_dark_text(s['dark'])}</td><td>{_e(s.get('flat') or 'none')}</td></tr>"
        for s in plan["science"])
    units = manifest.options.get("units", "adu")
    noise += ("<li>science frames in electrons: image and uncertainty x the gain above "
              "(BUNIT='electron'); masters in ADU</li>" if units == "electron" else
              "<li>science frames in ADU (BUNIT='adu')</li>")
    return (f"<h2>Plan</h2><ul>{noise}</ul>"
            f"<table><tr><th>master</th><th>from</th><th>bias</th></tr>{rows}</table>"
            f"<table><tr><th>science frame</th><th>bias</th><th>dark</th><th>flat</th></tr>"
            f"{science}</table>")


def _master_origin(master: dict[str, Any]) -> str:
    if master.get("library"):
        return _e(f"calibration library: {master['library']}")
    return _e(f"{len(master['inputs'])} {master['kind']} frames")


def _dark_text(dark: dict[str, Any] | None) -> str:
    return _e(f"{dark['master']} x {dark['scale']:.4g}") if dark else "none"


def _section_html(section: Section) -> str:
    rows = "".join(
        f"<tr class='{_e(m['verdict'])}'><td>{_e(m['question'])}</td><td>{_e(m['name'])}</td>"
        f"<td>{_value(m['value'])}</td><td><b>{_e(m['verdict'])}</b></td>"
        f"<td>{_e(m['threshold'])}</td><td>{_e(m['detail'])}</td></tr>" for m in section.metrics)
    notes = "".join(f"<p class='muted'>{_e(n)}</p>" for n in section.notes)
    images = "".join(f"<p class='figure'><a href='{_e(f)}'><img src='{_e(f)}' alt='{_e(f)}' "
                     f"loading='lazy'></a></p>" for f in section.figures)
    table = ("<table><tr><th>question</th><th>check</th><th>value</th><th>verdict</th>"
             f"<th>threshold</th><th>detail</th></tr>{rows}</table>") if rows else ""
    return (f"<h3 id='{_e(section.anchor)}'>{_e(section.title)}</h3>{notes}{table}{images}"
            "<p class='muted'><a href='#summary'>back to the summary</a></p>")
