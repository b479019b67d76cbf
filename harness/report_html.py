"""The HTML report: one self-contained file a person opens to see a run at a glance.

At the top the target, the verdict counts and the failing verdicts with their evidence;
then, per scenario, a chart of every volume's bytes and inodes over time with the phases
shaded, each request as a marker coloured by how it ended, each log record as a tick per
source (hover shows the request or the line), the verdict table, log excerpts; at the end
the target config (secrets redacted). Charts are plotly figures with plotly.js embedded
once, so the file needs no network when it is viewed.

This module only reads: JSON reports (verdict dicts), Timelines and the target's config.
"""

from __future__ import annotations

import datetime as _dt
import html
import importlib.resources
import json
import re
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from .invariants import OUTCOMES as INVARIANT_OUTCOMES
from .invariants import Rules, fmt_log, fmt_step, request_outcome
from .report import STATUS_WORD, counts, status
from .sizes import format_size
from .target import Target
from .timeline import DiskSample, LogRecord, PhaseMark, ProbeResult, StepResult, Timeline

Redact = Callable[[str], str]

OUTCOMES: dict[str, tuple[str, str]] = {
    # outcome: (colour, marker symbol); symbols differ too, so the chart reads without colour
    # (the outcomes are the invariants' own: ``harness.invariants.OUTCOMES``)
    outcome: style for outcome, style in zip(INVARIANT_OUTCOMES, (
        ("#2e7d32", "circle"), ("#1565c0", "square"), ("#c62828", "x"),
        ("#ef6c00", "triangle-up"), ("#6a1b9a", "hourglass"), ("#6d4c41", "diamond")),
        strict=True)
}
"""How a request ended, as the chart's legend names it."""

PHASE_FILL = {"steady": "#e8f5e9", "fill": "#fff3e0", "act": "#ffebee", "free": "#e3f2fd",
              "recover": "#f3e5f5"}
VOLUME_COLOURS = ("#00838f", "#ad1457", "#5d4037", "#283593", "#9e9d24", "#d84315",
                  "#00695c", "#6a1b9a")
LOG_COLOURS = ("#455a64", "#8d6e63", "#7e57c2", "#26a69a", "#ec407a", "#9ccc65")
EXCERPT_LINES = 40


def _timed(flow: ProbeResult) -> Iterable[tuple[float, int, StepResult]]:
    t = flow.t
    for i, s in enumerate(flow.steps):
        yield t, i, s
        t += s.elapsed


def _hover(text: str, redact: Redact, width: int = 110) -> str:
    """Hover text: redacted, escaped (plotly reads a subset of HTML), wrapped."""
    text = html.escape(redact(text), quote=False)
    return "<br>".join(text[i:i + width] for i in range(0, len(text), width)) or " "


# --- the chart ---------------------------------------------------------------------------

Figure = dict[str, Any]
"""A plotly figure as plotly.js reads it: {"data": [traces], "layout": {...}}."""

ROW_HEIGHTS = (0.27, 0.18, 0.30, 0.25)  # bytes, inodes, requests, log records
ROW_SPACING = 0.035


def _axis(row: int) -> str:
    """The suffix of a row's axes (plotly.js names them x, x2, x3, ...)."""
    return "" if row == 1 else str(row)


def _trace(row: int, **props: Any) -> dict[str, Any]:
    """A scatter trace on a row of the chart (plotly.js's own keys, not plotly.py's
    underscore shorthands), None values left out."""
    return {"type": "scatter", "xaxis": f"x{_axis(row)}", "yaxis": f"y{_axis(row)}",
            **{k: v for k, v in props.items() if v is not None}}


def _grid() -> dict[str, Any]:
    """Four rows on one shared x axis, as ``make_subplots(rows=4, shared_xaxes=True)`` lays
    them out (only the bottom axis labelled); written out, as the figure is, because
    plotly.py validates every property it is handed (half a second for a battery's charts)."""
    rows = len(ROW_HEIGHTS)
    usable = 1 - ROW_SPACING * (rows - 1)
    layout: dict[str, Any] = {}
    top = 1.0
    for i, h in enumerate(ROW_HEIGHTS, 1):
        n = _axis(i)
        bottom = max(0.0, top - h * usable)
        layout[f"xaxis{n}"] = {"anchor": f"y{n}", "domain": [0.0, 1.0], "showgrid": True,
                               "gridcolor": "#eceff1",
                               **({"matches": f"x{rows}", "showticklabels": False}
                                  if i < rows else {})}
        layout[f"yaxis{n}"] = {"anchor": f"x{n}", "domain": [round(bottom, 5), round(top, 5)],
                               "automargin": True}
        top = bottom - ROW_SPACING
    return layout


@cache
def _template() -> dict[str, Any]:
    """plotly.py's "plotly_white" template, vendored as JSON (harness/static/README.md)."""
    path = importlib.resources.files("harness") / "static" / "plotly_white.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


CHART_CONFIG = {"displaylogo": False, "responsive": True}


def _script_json(value: Any) -> str:
    """JSON that can sit inside a <script> element: no ``<``, ``>`` or ``&`` as such (a
    hover text holding ``</script>`` cannot end the element early)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def chart_html(fig: Figure, div_id: str) -> str:
    """A chart's element and the call that draws it (plotly.js is in the page's head), as
    plotly.py's ``to_html(full_html=False, include_plotlyjs=False)`` writes it."""
    height = fig["layout"].get("height", 500)
    return (f'<div id="{html.escape(div_id)}" class="plotly-graph-div" '
            f'style="height:{int(height)}px; width:100%;"></div>'
            '<script type="text/javascript">window.PLOTLYENV=window.PLOTLYENV || {};'
            f"if (document.getElementById({_script_json(div_id)})) {{Plotly.newPlot("
            f"{_script_json(div_id)}, {_script_json(fig['data'])}, "
            f"{_script_json(fig['layout'])}, {_script_json(CHART_CONFIG)})}};</script>")


def figure(tl: Timeline, rules: Rules, redact: Redact = lambda s: s) -> Figure:
    """One scenario's chart: bytes and inodes used per volume, requests, log ticks, phases."""
    data: list[dict[str, Any]] = []
    volumes = list(dict.fromkeys(d.volume for d in tl.disk()))
    for i, vol in enumerate(volumes):
        samples = tl.disk(vol)
        colour = VOLUME_COLOURS[i % len(VOLUME_COLOURS)]
        mine = vol == tl.volume
        line = {"color": colour, "width": 3 if mine else 1.5, "dash": "solid" if mine else "dot",
                "shape": "hv"}
        data.append(_trace(
            1, x=[d.t for d in samples], y=[100 * d.used_fraction for d in samples],
            mode="lines+markers", marker={"size": 4},
            name=vol + (" (filled)" if mine else ""), legendgroup=f"vol-{vol}",
            legendgrouptitle={"text": "volumes"} if i == 0 else None, line=line,
            hovertext=[_disk_hover(d) for d in samples], hoverinfo="text"))
        data.append(_trace(
            2, x=[d.t for d in samples],
            y=[100 * (d.inodes_total - d.inodes_free) / d.inodes_total if d.inodes_total else 0
               for d in samples],
            mode="lines+markers", marker={"size": 4}, name=f"{vol} inodes",
            legendgroup=f"vol-{vol}", showlegend=False,
            line=line, hovertext=[_inode_hover(d) for d in samples], hoverinfo="text"))
    data += _request_traces(tl, rules, redact) + _log_traces(tl, redact)
    layout = _grid()
    windows = tl.windows()
    layout["shapes"], layout["annotations"] = _phase_bands(windows)
    if windows:
        # start-up log lines come before the first phase; they stay a pan away
        span = windows[-1][1] - windows[0][0].t
        pad = 0.02 * span
        for i in range(1, len(ROW_HEIGHTS) + 1):
            layout[f"xaxis{_axis(i)}"]["range"] = [windows[0][0].t - pad,
                                                   windows[-1][1] + pad]
    for i, title in enumerate(("bytes used", "inodes used", "requests", "log records"), 1):
        layout[f"yaxis{_axis(i)}"]["title"] = {"text": title}
    for n in ("", "2"):
        layout[f"yaxis{n}"].update(range=[-3, 105], ticksuffix="%")
    for n in ("3", "4"):
        layout[f"yaxis{n}"]["type"] = "category"
    layout[f"xaxis{len(ROW_HEIGHTS)}"]["title"] = {"text": "seconds since the scenario started"}
    layout.update(
        height=760, margin={"l": 60, "r": 20, "t": 56, "b": 50}, template=_template(),
        hovermode="closest", legend={"groupclick": "toggleitem", "font": {"size": 11}},
        hoverlabel={"font": {"family": "ui-monospace, monospace", "size": 11},
                    "align": "left"},
        font={"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12})
    return {"data": data, "layout": layout}


def _request_traces(tl: Timeline, rules: Rules, redact: Redact) -> list[dict[str, Any]]:
    """A marker per request, a series per outcome (legend order: ``OUTCOMES``)."""
    by_outcome: dict[str, list[tuple[float, str, str]]] = {k: [] for k in OUTCOMES}
    for flow in tl.of(ProbeResult):
        for t, i, s in _timed(flow):
            kind = request_outcome(flow, i, rules)
            # a row per step of a multi-step flow, so a write and its readback, a few ms
            # apart, are two markers a person can tell apart (and hover one at a time)
            row = f"{flow.probe}/{s.name}" if len(flow.steps) > 1 and s.name else flow.probe
            by_outcome[kind].append((t, row, _hover(f"{kind}: {fmt_step(flow, s, t)}",
                                                    redact)))
    out: list[dict[str, Any]] = []
    for kind, points in by_outcome.items():
        if not points:
            continue
        colour, symbol = OUTCOMES[kind]
        out.append(_trace(
            3, x=[p[0] for p in points], y=[p[1] for p in points], mode="markers", name=kind,
            legendgroup="requests",
            legendgrouptitle={"text": "requests"} if not out else None,
            marker={"color": colour, "symbol": symbol, "size": 9,
                    "line": {"width": 1, "color": "#ffffff"}},
            hovertext=[p[2] for p in points], hoverinfo="text"))
    return out


def _log_traces(tl: Timeline, redact: Redact) -> list[dict[str, Any]]:
    """A tick per log record, a series per source."""
    out: list[dict[str, Any]] = []
    sources = list(dict.fromkeys(r.source for r in tl.of(LogRecord)))
    for i, src in enumerate(sources):
        recs = tl.logs(src)
        out.append(_trace(
            4, x=[r.t for r in recs], y=[src] * len(recs), mode="markers", name=src,
            legendgroup="logs", legendgrouptitle={"text": "log sources"} if i == 0 else None,
            marker={"symbol": "line-ns-open", "size": 14,
                    "color": LOG_COLOURS[i % len(LOG_COLOURS)], "line": {"width": 1.5}},
            hovertext=[_hover(fmt_log(r), redact) for r in recs], hoverinfo="text"))
    return out


def _phase_bands(windows: Sequence[tuple[PhaseMark, float]]
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One shaded band per phase across the whole height (the x axes are shared), and the
    phases' names above the chart."""
    span = (windows[-1][1] - windows[0][0].t) if windows else 1.0
    last_label = float("-inf")
    lift = 0
    shapes: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for mark, end in windows:
        shapes.append({"type": "rect", "x0": mark.t, "x1": end, "xref": "x", "y0": 0, "y1": 1,
                       "yref": "paper", "fillcolor": PHASE_FILL.get(mark.phase, "#f5f5f5"),
                       "opacity": 1.0, "layer": "below", "line": {"width": 0}})
        mid = (mark.t + end) / 2
        # a narrow phase's label goes a line higher than its neighbour's, so both read
        lift = 0 if mid - last_label > 0.07 * span else 1 - lift
        last_label = mid
        labels.append({"x": mid, "y": 1.0, "xref": "x", "yref": "paper", "yanchor": "bottom",
                       "yshift": 14 * lift, "text": f"<b>{mark.phase}</b>", "showarrow": False,
                       "font": {"size": 11, "color": "#37474f"}})
    return shapes, labels


_FIGURES: dict[int, tuple[Timeline, Figure]] = {}  # drawn ahead: id(timeline) -> chart


def prepare_charts(timelines: Sequence[Timeline], target: Target) -> None:
    """Draw the charts of a run's timelines ahead of the page (``render_run`` with this
    target then uses them, once): ``fulldisk run`` draws them while its last stacks are
    being removed."""
    rules = Rules.from_target(target)
    for tl in timelines:
        _FIGURES[id(tl)] = (tl, figure(tl, rules, target.redact))


def _disk_hover(d: DiskSample) -> str:
    return (f"t={d.t:.2f}s {d.volume}: {format_size(d.bytes_used)} of "
            f"{format_size(d.bytes_total)} used ({100 * d.used_fraction:.0f}%), "
            f"as {d.as_user}{' - FULL' if d.full else ''}")


def _inode_hover(d: DiskSample) -> str:
    return (f"t={d.t:.2f}s {d.volume}: {d.inodes_total - d.inodes_free} of "
            f"{d.inodes_total} inodes used{' - FULL' if d.full else ''}")


# --- the page ----------------------------------------------------------------------------

@dataclass(frozen=True)
class RunView:
    """One battery run as a page section: its JSON report and the timelines behind it."""

    report: Mapping[str, Any]
    timelines: Sequence[Timeline]
    label: str = ""  # e.g. "DATAHUB_DEFECTS=silent_sessions" on a selftest page
    chart_all: bool = True  # False: chart only scenarios with a verdict that did not pass


def _e(text: Any) -> str:
    return html.escape(str(text))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _chips(c: Mapping[str, int]) -> str:
    words = {"fail": "failed", "not_judged": "not judged", "pass": "passed"}
    return "".join(f'<span class="chip {k}{"" if c[k] else " zero"}">{c[k]} {w}</span>'
                   for k, w in words.items())


def _where(v: Mapping[str, Any]) -> str:
    vol = v.get("volume")
    return f'{v.get("scenario", "")}{" · " + str(vol) if vol else ""}'


CARD_EVIDENCE = 6
"""Evidence lines a card at the top shows open; the rest fold (the scenario's table has all)."""


def _evidence(v: Mapping[str, Any], redact: Redact, open_lines: int | None = None) -> str:
    lines = [f"<li>{_e(redact(str(line)))}</li>" for line in v.get("evidence", [])]
    if not lines:
        return ""
    if open_lines is None or len(lines) <= open_lines:
        return f'<ol class="evidence">{"".join(lines)}</ol>'
    return (f'<ol class="evidence">{"".join(lines[:open_lines])}</ol><details class="more">'
            f"<summary>{len(lines) - open_lines} more evidence lines</summary>"
            f'<ol class="evidence" start="{open_lines + 1}">{"".join(lines[open_lines:])}'
            "</ol></details>")


def _card(v: Mapping[str, Any], redact: Redact, anchor: str) -> str:
    st = status(v)
    return (f'<article class="verdict {st}" data-status="{st}">'
            f'<h3><span class="badge {st}">{STATUS_WORD[st]}</span> {_e(v["invariant"])}'
            f' <span class="where">{_e(_where(v))}</span>'
            f' <a class="jump" href="#{anchor}">chart ↓</a></h3>'
            f'<p class="summary">{_e(redact(str(v.get("summary", ""))))}</p>{_reason(v)}'
            f'{_evidence(v, redact, CARD_EVIDENCE)}</article>')


def _group_card(vs: Sequence[Mapping[str, Any]], redact: Redact,
                anchor: Mapping[str, str]) -> str:
    """One card per failing invariant: the scenarios it failed in (each with its summary
    and a link to its chart), and the first one's evidence, so that one defect caught in
    eleven scenarios reads as one defect."""
    if len(vs) == 1:
        return _card(vs[0], redact, anchor[str(vs[0].get("scenario", ""))])
    first = vs[0]
    items = "".join(
        f'<li><a href="#{anchor[str(v.get("scenario", ""))]}">{_e(_where(v))}</a>: '
        f'{_e(redact(str(v.get("summary", ""))))}</li>' for v in vs)
    return (f'<article class="verdict fail" data-status="fail" '
            f'data-invariant="{_e(str(first["invariant"]))}">'
            f'<h3><span class="badge fail">{STATUS_WORD["fail"]}</span> '
            f'{_e(str(first["invariant"]))} <span class="where">failed in {len(vs)} '
            f'scenarios</span></h3><ul class="scenarios">{items}</ul>'
            f'<p class="summary">evidence of {_e(_where(first))}:</p>'
            f'{_evidence(first, redact, CARD_EVIDENCE)}</article>')


def _reason(v: Mapping[str, Any]) -> str:
    """Which evidence a not judged verdict was missing (when it says more than its summary)."""
    if status(v) != "not_judged" or not v.get("reason") or v["reason"] == v.get("summary"):
        return ""
    return f'<p class="reason">missing: {_e(v["reason"])}</p>'


def _verdict_table(verdicts: Sequence[Mapping[str, Any]], redact: Redact) -> str:
    order = {"fail": 0, "not_judged": 1, "pass": 2}
    rows = []
    for v in sorted(verdicts, key=lambda v: order[status(v)]):
        st = status(v)
        ev = _evidence(v, redact)
        if ev and st == "pass":
            ev = f"<details><summary>{len(v['evidence'])} evidence lines</summary>{ev}</details>"
        rows.append(f'<tr class="{st}"><td><span class="badge {st}">{STATUS_WORD[st]}</span>'
                    f'</td><td>{_e(v["invariant"])}</td><td>{_e(redact(str(v["summary"])))}'
                    f'{_reason(v)}{ev}</td></tr>')
    return ('<table class="verdicts"><thead><tr><th>verdict</th><th>invariant</th>'
            f'<th>why, and the evidence</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _log_excerpts(tl: Timeline, rules: Rules, redact: Redact) -> str:
    """Per source, the records from the start of the fill to the end of the run: what the
    operator had to go on while the disk was full (an empty list is itself the finding)."""
    marks = [m for m in tl.of(PhaseMark) if m.phase != "steady"]
    start = marks[0].t if marks else float("-inf")
    cause = re.compile("|".join(f"(?:{p})" for p in rules.cause_patterns)) \
        if rules.cause_patterns else None
    blocks = []
    for src in dict.fromkeys(r.source for r in tl.of(LogRecord)):
        recs = [r for r in tl.logs(src) if r.t >= start]
        shown = recs[-EXCERPT_LINES:]
        lines = "".join(
            f'<li class="{"cause" if cause and cause.search(r.text) else ""}">'
            f'<span class="t">{r.t:7.2f}s</span> {_e(redact(r.text))}</li>' for r in shown)
        more = (f'<p class="more">{len(recs) - len(shown)} earlier records not shown</p>'
                if len(recs) > len(shown) else "")
        body = f"<ol>{lines}</ol>" if lines else \
            '<p class="silent">no record from the start of the fill to the end</p>'
        blocks.append(f'<div class="logsrc"><h4>{_e(src)} <span class="n">{len(recs)} '
                      f'records</span></h4>{more}{body}</div>')
    if not blocks:
        return ""
    return ('<details class="logs"><summary>log excerpts from the start of the fill '
            f'(last {EXCERPT_LINES} per source; lines naming the cause marked)</summary>'
            f'{"".join(blocks)}</details>')


def _scenario(tl: Timeline | None, name: str, verdicts: Sequence[Mapping[str, Any]],
              rules: Rules, redact: Redact, anchor: str, chart: bool) -> tuple[str, bool]:
    """A scenario's section; returns the HTML and whether it drew a chart (the page then
    embeds plotly.js, once, in its head)."""
    c = counts(verdicts)
    vol = f' <span class="where">volume {_e(tl.volume)}</span>' if tl and tl.volume else ""
    out = [f'<section class="scenario" id="{anchor}" data-scenario="{_e(name)}">'
           f'<h2>{_e(name)}{vol} {_chips(c)}</h2>']
    used_js = False
    if tl is not None and chart:
        ready = _FIGURES.pop(id(tl), None)
        fig = ready[1] if ready is not None and ready[0] is tl else figure(tl, rules, redact)
        out.append(f'<div class="chart">{chart_html(fig, f"chart-{anchor}")}</div>')
        used_js = True
    elif tl is None:
        out.append('<p class="note">no timeline was recorded for this scenario</p>')
    out.append(_verdict_table(verdicts, redact))
    if tl is not None:
        out.append(_log_excerpts(tl, rules, redact))
    out.append("</section>")
    return "".join(out), used_js


def _run_sections(run: RunView, rules: Rules, redact: Redact, prefix: str,
                  js_done: bool) -> tuple[str, str, str, bool]:
    """(top: failing and not-judged cards, index table, scenario sections, whether this or
    an earlier run drew a chart: the page then needs plotly.js)."""
    verdicts = list(run.report.get("verdicts", []))
    by_scenario: dict[str, list[Mapping[str, Any]]] = {}
    for v in verdicts:
        by_scenario.setdefault(str(v.get("scenario", "")), []).append(v)
    timelines = {tl.scenario: tl for tl in run.timelines}
    names = list(dict.fromkeys([*by_scenario, *timelines]))
    anchor = {n: f"{prefix}sc-{_slug(n)}" for n in names}
    top = []
    for st in ("fail", "not_judged"):
        if st == "fail":
            failing: dict[str, list[Mapping[str, Any]]] = {}
            for v in verdicts:
                if status(v) == "fail":
                    failing.setdefault(str(v["invariant"]), []).append(v)
            cards = [_group_card(vs, redact, anchor) for vs in failing.values()]
        else:
            cards = [_card(v, redact, anchor[str(v.get("scenario", ""))]) for v in verdicts
                     if status(v) == st]
        if cards:
            title = "Failing verdicts" if st == "fail" else "Not judged (evidence missing)"
            top.append(f'<section class="cards {st}"><h2>{title}</h2>{"".join(cards)}</section>')
    errors = run.report.get("errors", [])
    if errors:
        items = "".join(f"<li><pre>{_e(redact(str(e)))}</pre></li>" for e in errors)
        top.insert(0, f'<section class="errors"><h2>The run broke</h2><ol>{items}</ol></section>')
    rows = []
    for n in names:
        c = counts(by_scenario.get(n, []))
        worst = "fail" if c["fail"] else "not_judged" if c["not_judged"] else "pass"
        tl = timelines.get(n)
        rows.append(f'<tr class="{worst}"><td><a href="#{anchor[n]}">{_e(n)}</a></td>'
                    f'<td>{_e(tl.volume if tl and tl.volume else "")}</td>'
                    + "".join(f'<td class="n {k}{"" if c[k] else " zero"}">{c[k]}</td>'
                              for k in ("fail", "not_judged", "pass")) + "</tr>")
    index = ('<table class="index"><thead><tr><th>scenario</th><th>volume</th><th>failed</th>'
             '<th>not judged</th><th>passed</th></tr></thead><tbody>'
             f'{"".join(rows)}</tbody></table>') if rows else ""
    sections = []
    for n in names:
        vs = by_scenario.get(n, [])
        chart = run.chart_all or any(status(v) != "pass" for v in vs)
        sec, used = _scenario(timelines.get(n), n, vs, rules, redact, anchor[n], chart)
        js_done = js_done or used
        sections.append(sec)
    return "".join(top), index, "".join(sections), js_done


def _config(config: Mapping[str, Any] | None) -> str:
    if config is None:
        return ""
    text = json.dumps(config, indent=2, default=str)
    return ('<section id="config"><h2>Target config used (secrets redacted)</h2>'
            f'<details><summary>{_e(config.get("name", "target"))}: '
            f'{_e(config.get("path", ""))}</summary><pre>{_e(text)}</pre></details></section>')


def _page(title: str, header: str, body: str, charts: bool = True) -> str:
    # plotly.js (4.6 MB) goes into the page once, here, as a slot: a page written to a file
    # gets the package's bytes streamed in (decoded, plotly.js is a 9 MB string, and every
    # page string holding it as large again); a page returned as text gets it inline
    js = _JS_SLOT if charts else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{CSS}</style>{js}</head><body>"
            f'<header class="top">{header}</header><main>{body}</main>'
            f'<footer>fulldisk · generated {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M UTC}'
            "</footer></body></html>\n")


def _headline(target: str, c: Mapping[str, int], passed: bool, extra: str = "",
              untested: Sequence[str] = ()) -> str:
    badge = ('<span class="verdict-badge pass">PASSED</span>' if passed else
             '<span class="verdict-badge fail">NOT SAFE TO DEPLOY</span>')
    if untested and not c.get("fail"):  # a volume never ran out: never PASSED
        badge = (f'<span class="verdict-badge fail">NOT TESTED: {_e(", ".join(untested))} '
                 "never ran out</span>")
    return (f'<h1>fulldisk: <span class="target">{_e(target)}</span> {badge}</h1>'
            f'<p class="counts">{_chips(c)} {extra}</p>')


def render_report(report: Mapping[str, Any], timelines: Sequence[Timeline], *,
                  config: Mapping[str, Any] | None = None, rules: Rules | None = None,
                  redact: Redact = lambda s: s, inline_js: bool = True) -> str:
    """The page for one run (``fulldisk run|gate``, the pytest plugin); ``inline_js=False``
    leaves plotly.js for :func:`write_html` to stream in."""
    rules = rules or Rules()
    verdicts = list(report.get("verdicts", []))
    c = counts(verdicts)
    top, index, sections, charts = _run_sections(RunView(report, timelines), rules, redact,
                                                 "", False)
    n = len({str(v.get("scenario", "")) for v in verdicts} | {t.scenario for t in timelines})
    header = _headline(str(report.get("target", "?")), c, bool(report.get("passed")),
                       f'<span class="meta">{n} scenarios · {len(verdicts)} verdicts</span>',
                       [str(v) for v in report.get("not_tested") or ()])
    word = "passed" if report.get("passed") else f"{c['fail']} failed"
    return _inline(_page(f"fulldisk: {report.get('target', '?')} — {word}", header,
                         top + index + sections + _config(config), charts), inline_js)


def render_selftest(result: Mapping[str, Any], runs: Mapping[str, RunView], *,
                    config: Mapping[str, Any] | None = None, rules: Rules | None = None,
                    redact: Redact = lambda s: s, inline_js: bool = True) -> str:
    """The page for ``fulldisk selftest``: the matrix, then per configuration the verdicts
    that did not pass and the charts of their scenarios (how each defect was caught)."""
    rules = rules or Rules()
    rows = []
    for name, d in result.get("defects", {}).items():
        ok = "pass" if d["caught"] else "fail"
        rows.append(f'<tr class="{ok}"><td><a href="#cfg-{_slug(name)}">{_e(name)}</a></td>'
                    f'<td><span class="badge {ok}">{"caught" if d["caught"] else "MISSED"}'
                    f'</span></td><td>{_e(d["expected"])}</td>'
                    f'<td>{_e(", ".join(d["invariants"]) or "-")}</td></tr>')
    h = result.get("hardened", {})
    hk = "pass" if h.get("passed") else "fail"
    problems = [*h.get("false_alarms", []), *(f"not judged: {n}" for n in h.get("not_judged", []))]
    rows.append(f'<tr class="{hk}"><td><a href="#cfg-hardened">hardened</a></td><td>'
                f'<span class="badge {hk}">{"no alarm" if h.get("passed") else "FALSE ALARM"}'
                '</span></td><td>nothing fails, everything judged</td>'
                f'<td>{_e("; ".join(problems) or "-")}</td></tr>')
    matrix = ('<section class="matrix"><h2>Every defect switch against the invariant that '
              'must catch it</h2><table class="index"><thead><tr><th>configuration</th>'
              '<th>result</th><th>expected</th><th>failed invariants</th></tr></thead>'
              f'<tbody>{"".join(rows)}</tbody></table></section>')
    body = [matrix]
    js_done = False
    for label, run in runs.items():
        top, index, sections, js_done = _run_sections(run, rules, redact,
                                                      f"{_slug(label)}-", js_done)
        c = counts(run.report.get("verdicts", []))
        body.append(f'<section class="config" id="cfg-{_slug(label)}"><h2 class="cfg">'
                    f'{_e(run.label or label)} {_chips(c)}</h2>{top}{index}{sections}'
                    "</section>")
    passed = bool(result.get("passed"))
    defects = result.get("defects", {})
    caught = sum(1 for d in defects.values() if d["caught"])
    badge = ('<span class="verdict-badge pass">PASSED</span>' if passed else
             '<span class="verdict-badge fail">FAILED</span>')
    alarms = len(h.get("false_alarms", []))
    header = (f'<h1>fulldisk selftest {badge}</h1><p class="counts"><span class="meta">'
              f'{caught} of {len(defects)} defect switches caught by their invariant · '
              f'{"no false alarm" if not alarms else f"{alarms} false alarms"} on the '
              f'hardened build · {result.get("seconds", "?")} s</span></p>')
    return _inline(_page(f"fulldisk selftest — {'passed' if passed else 'FAILED'}", header,
                         "".join(body) + _config(config), js_done), inline_js)


_JS_SLOT = "<!-- fulldisk: plotly.js -->"
_JS_HEAD = ("<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>"
            '<script charset="utf-8">')


def _plotly_js() -> Traversable:
    """plotly.js's basic bundle, vendored (harness/static/README.md): the charts draw only
    scatter traces, and the full bundle would make every report 4 MB heavier."""
    return importlib.resources.files("harness") / "static" / "plotly-basic.min.js"


def _inline(page: str, inline_js: bool) -> str:
    """The page with plotly.js in its slot (``inline_js``), or with the slot for
    :func:`write_html` to stream the script into."""
    if not inline_js or _JS_SLOT not in page:
        return page
    head, _, tail = page.partition(_JS_SLOT)
    return f"{head}{_JS_HEAD}{_plotly_js().read_text(encoding='utf-8')}</script>{tail}"


def write_html(text: str, path: str | Path) -> Path:
    """Write a page, creating folders; a page rendered with ``inline_js=False`` gets
    plotly.js streamed from the package into its slot (one copy of it, as bytes)."""
    from .report import output

    p = Path(path)
    head, slot, tail = text.partition(_JS_SLOT)
    with output(p) as f:  # whole or not at all; an OSError names the path (exit 3)
        f.write(head.encode("utf-8"))
        if slot:
            f.write(_JS_HEAD.encode())
            with _plotly_js().open("rb") as js:
                shutil.copyfileobj(js, f)
            f.write(b"</script>")
        f.write(tail.encode("utf-8"))
    return p


CSS = """
:root{--fail:#c62828;--pass:#2e7d32;--nj:#8a6d00;--ink:#263238;--muted:#607d8b;--line:#e0e6ea}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--ink);
 background:#f6f8f9}
header.top{background:#fff;border-bottom:1px solid var(--line);padding:14px 28px 8px}
header.top h1{margin:0;font-size:22px;font-weight:600;display:flex;align-items:center;gap:14px}
header.top .target{font-family:ui-monospace,monospace}
main{padding:8px 28px 40px;max-width:1500px}
footer{color:var(--muted);padding:10px 28px 30px;font-size:12px}
h2{font-size:17px;margin:22px 0 10px;display:flex;align-items:center;gap:10px;flex-wrap:wrap}
.counts{margin:8px 0 4px;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
.meta,.where{color:var(--muted);font-weight:400;font-size:13px}
.chip{border-radius:12px;padding:2px 10px;font-size:12.5px;font-weight:600;background:#eceff1}
.chip.fail{background:#ffebee;color:var(--fail)}.chip.pass{background:#e8f5e9;color:var(--pass)}
.chip.not_judged{background:#fff8e1;color:var(--nj)}
.chip.zero{background:#eceff1;color:var(--muted);font-weight:400}
.verdict-badge{font-size:13px;padding:4px 12px;border-radius:4px;color:#fff;letter-spacing:.04em}
.verdict-badge.fail{background:var(--fail)}.verdict-badge.pass{background:var(--pass)}
.badge{display:inline-block;min-width:44px;text-align:center;font-size:11px;font-weight:700;
 padding:1px 6px;border-radius:3px;color:#fff;background:var(--pass)}
.badge.fail{background:var(--fail)}.badge.not_judged{background:var(--nj)}
.badge.pass{background:#a5d6a7;color:#1b5e20}
.cards h2{margin-top:14px}
article.verdict{background:#fff;border:1px solid var(--line);border-left:5px solid var(--pass);
 border-radius:4px;padding:8px 14px;margin:0 0 10px}
article.verdict.fail{border-left-color:var(--fail)}
article.verdict.not_judged{border-left-color:var(--nj)}
article.verdict h3{margin:0;font-size:15px;display:flex;gap:10px;align-items:baseline;
 flex-wrap:wrap}
article.verdict .jump{margin-left:auto;font-size:12px;font-weight:400}
p.summary{margin:4px 0}
p.reason{margin:2px 0;color:var(--nj);font-size:13px}
ol.evidence{margin:4px 0 2px;padding-left:22px;font:12px/1.4 ui-monospace,monospace;
 color:#37474f}
ol.evidence li{white-space:pre-wrap;word-break:break-word;padding:1px 0}
.cards.not_judged ol.evidence{max-height:9em;overflow:auto}
section.errors pre{white-space:pre-wrap;background:#fff3f3;padding:8px;border-radius:4px}
table{border-collapse:collapse;background:#fff;border:1px solid var(--line);width:100%}
th,td{text-align:left;padding:5px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#f0f3f5;font-weight:600;font-size:12.5px}
table.index{width:auto;min-width:620px}
td.n{text-align:right;font-variant-numeric:tabular-nums}
td.n.fail{color:var(--fail)}td.n.not_judged{color:var(--nj)}td.n.pass{color:var(--pass)}
td.n.zero{color:#b0bec5}
tr.fail td:first-child a{color:var(--fail);font-weight:600}
section.scenario{background:#fff;border:1px solid var(--line);border-radius:6px;
 padding:4px 16px 14px;margin:26px 0}
section.config{border-top:3px solid var(--line);margin-top:34px}
.chart{margin:0 -6px 10px}
table.verdicts td:nth-child(2){font-family:ui-monospace,monospace;white-space:nowrap}
details{margin:8px 0}
details>summary{cursor:pointer;color:#37474f;font-weight:600}
details.more{margin:0 0 2px 22px}details.more>summary{font-weight:400;font-size:12.5px}
details.logs .logsrc h4{margin:10px 0 2px;font:600 13px ui-monospace,monospace}
details.logs .n{color:var(--muted);font-weight:400}
details.logs ol{list-style:none;margin:0;padding:6px 8px;background:#fafbfc;
 border:1px solid var(--line);font:11.5px/1.45 ui-monospace,monospace;max-height:22em;
 overflow:auto}
details.logs li{white-space:pre-wrap;word-break:break-all}
details.logs li.cause{background:#fff3e0;color:#bf360c}
details.logs .t{color:var(--muted)}
p.silent{color:var(--fail);font-style:italic}
#config pre{background:#fff;border:1px solid var(--line);padding:10px;font-size:12px;
 max-height:40em;overflow:auto}
"""


def render_run(report: Mapping[str, Any], timelines: Sequence[Timeline],
               target: Target | None, *, inline_js: bool = True) -> str:
    """:func:`render_report` with the target's redacted config, its rules and redaction."""
    if target is None:
        return render_report(report, timelines, inline_js=inline_js)
    return render_report(report, timelines, config=target.redacted_config(),
                         rules=Rules.from_target(target), redact=target.redact,
                         inline_js=inline_js)
