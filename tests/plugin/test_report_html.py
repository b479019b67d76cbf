"""The HTML report as data: what the chart holds, what the page shows first, what it hides.
(The browser test, tests/docker/test_report_seen.py, checks the same page as a person sees it.)"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from sample_runs import OUTCOME_COUNTS, SECRET, SOURCES, VOLUMES, sample_report, sample_timeline

from harness.invariants import Rules
from harness.report_html import OUTCOMES, figure, render_report, request_outcome
from harness.target import reference_target
from harness.timeline import ProbeResult, StepResult, Timeline


def _step(**kw: object) -> StepResult:
    base: dict[str, object] = {"name": "s", "method": "GET", "target": "/", "status": 200,
                               "passed": True, "elapsed": 0.01}
    return StepResult(**{**base, **kw})  # type: ignore[arg-type]


def _flow(*steps: StepResult) -> ProbeResult:
    return ProbeResult(t=0.0, probe="p", kind="http", steps=steps)


def test_request_outcomes_name_how_each_request_ended() -> None:
    rules = Rules(request_seconds=5.0)
    write = _step(method="POST", status=302, write=True)
    lost = _step(passed=False, readback=True)
    assert request_outcome(_flow(write, lost), 0, rules) == "fake success"
    assert request_outcome(_flow(write, _step(readback=True)), 0, rules) == "ok"
    # a readback that failed loudly cannot show the write was lost: the write is not a fake
    loud = _step(status=500, passed=False, readback=True)
    assert request_outcome(_flow(write, loud), 0, rules) == "ok"
    assert request_outcome(_flow(write, loud), 1, rules) == "refused cleanly"
    assert request_outcome(_flow(_step(status=200, passed=False)), 0, rules) == "fake success"
    assert request_outcome(_flow(_step(body_complete=False, passed=False)), 0, rules) == \
        "cut body"
    assert request_outcome(_flow(_step(status=None, passed=False, timed_out=True)), 0,
                           rules) == "hang"
    assert request_outcome(_flow(_step(passed=True, elapsed=6.0)), 0, rules) == "hang"
    assert request_outcome(_flow(_step(status=None, passed=False)), 0, rules) == "other error"
    assert request_outcome(_flow(_step(status=404, passed=False)), 0, rules) == "other error"
    assert request_outcome(_flow(_step(method="EXEC", status=1, passed=False)), 0, rules) == \
        "refused cleanly"


def test_chart_has_a_series_per_volume_outcome_and_source_with_every_point() -> None:
    tl = sample_timeline()
    fig = figure(tl, Rules())
    traces = fig["data"]
    names = [t["name"] for t in traces]
    assert names.count("sessions (filled)") == 1 and "applogs" in names
    assert {f"{v} inodes" for v in VOLUMES} <= set(names)
    assert [n for n in names if n in OUTCOMES] == list(OUTCOME_COUNTS)  # legend order
    assert [n for n in names if n in SOURCES] == list(dict.fromkeys(
        r.source for r in tl.logs()))
    assert len(traces) == 2 * len(VOLUMES) + len(OUTCOME_COUNTS) + len(SOURCES)
    by_name = {t["name"]: t for t in traces}
    for outcome, n in OUTCOME_COUNTS.items():
        assert len(by_name[outcome]["x"]) == n, outcome
    for src in SOURCES:
        assert len(by_name[src]["x"]) == len(tl.logs(src))
    assert len(by_name["sessions (filled)"]["x"]) == len(tl.disk("sessions"))
    assert max(by_name["sessions (filled)"]["y"]) == 100.0
    # the phases are shaded (one band per phase, across the four rows) and named
    layout = fig["layout"]
    bands = [s for s in layout["shapes"] if s["type"] == "rect"]
    assert len(bands) == 5
    assert all((b["yref"], b["y0"], b["y1"], b["xref"]) == ("paper", 0, 1, "x") for b in bands)
    assert [b["x0"] for b in bands] == [m.t for m, _ in tl.windows()]
    labels = [a["text"] for a in layout["annotations"]]
    assert [lb for lb in labels if lb.startswith("<b>")] == [
        f"<b>{p}</b>" for p in ("steady", "fill", "act", "free", "recover")]
    hover = " ".join(" ".join(t["hovertext"]) for t in traces)
    assert "fake success: t=2.10s login/login: POST /login -&gt; 302" in hover
    assert "No space left on device" in hover and "&lt;cache full&gt; &amp;" in hover


def test_the_chart_is_what_plotly_would_draw_from_its_own_subplots() -> None:
    """The figure is written as plotly.js's JSON (plotly.py's validation of every property
    cost half a second per battery): plotly.py accepts every key of it, and its grid is
    make_subplots' own (four rows on the bottom x axis, the same domains)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from harness.report_html import ROW_HEIGHTS, ROW_SPACING

    fig = figure(sample_timeline(), Rules())
    go.Figure(fig)  # raises on any property plotly does not know, or a bad value
    ref = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=ROW_SPACING,
                        row_heights=list(ROW_HEIGHTS)).to_plotly_json()["layout"]
    for key, axis in ref.items():
        if key.startswith(("xaxis", "yaxis")):
            mine = fig["layout"][key]
            assert mine["domain"] == pytest.approx(axis.pop("domain")), key
            assert {k: mine.get(k) for k in axis} == axis, key
    rows = {(t["xaxis"], t["yaxis"]) for t in fig["data"]}
    assert rows == {("x", "y"), ("x2", "y2"), ("x3", "y3"), ("x4", "y4")}


def _page() -> str:
    report, tl = sample_report()
    t = reference_target()
    return render_report(report, [tl], config=t.redacted_config(), rules=Rules(),
                         redact=t.redact)


def test_page_puts_the_failing_verdicts_and_their_evidence_first() -> None:
    page = _page()
    body = page[page.index("<body>"):]
    first_fail = body.index('class="verdict fail"')
    assert first_fail < body.index('class="chart"') and first_fail < body.index("<table")
    assert body.index("no_silent_write_loss") < body.index('class="scenario"')
    head = body[:body.index('class="scenario"')]
    assert "acknowledged, then" in head  # the evidence itself, not only the summary
    assert "NOT SAFE TO DEPLOY" in head
    assert re.search(r"2 failed</span>.*1 not judged</span>.*2 passed</span>", head)
    # not judged verdicts are shown, after the failures, with what was missing
    nj = body.index('class="verdict not_judged"')
    assert nj > first_fail and "no health sample was taken" in body
    assert Counter(re.findall(r'<tr class="(fail|not_judged|pass)"><td><span class="badge',
                              body)) == {"fail": 2, "not_judged": 1, "pass": 2}


def test_page_is_self_contained_and_redacts_secrets() -> None:
    page = _page()
    assert SECRET not in page
    assert "password=***" in page  # the log line that carried it, redacted in place
    assert "&quot;password&quot;: &quot;***&quot;" in page  # the target config
    assert page.count("<script") >= 2 and not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"<link[^>]+href=", page)
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js embedded once
    assert page.count("plotly.js v") == 1 or page.count("* plotly.js") == 1


def test_timeline_survives_its_json_form() -> None:
    tl = sample_timeline()
    again = Timeline.from_dict(__import__("json").loads(tl.to_json()))
    assert again.events == tl.events and again.scenario == tl.scenario


pytest_plugins = ["pytester"]


def test_plugin_writes_the_page_with_timelines_from_xdist_workers(
        pytester: pytest.Pytester) -> None:
    """`--fulldisk-html`: verdicts and timelines recorded in two workers reach one page,
    and the JUnit file carries the verdicts but not the (large) timelines."""
    tests_dir = Path(__file__).resolve().parents[1]
    pytester.makepyfile(test_two=f"""
        import sys
        from dataclasses import replace
        sys.path.insert(0, {str(tests_dir)!r})
        import pytest
        from sample_runs import sample_timeline
        from harness.battery import Outcome
        from harness.invariants import Rules, evaluate

        @pytest.mark.parametrize("name", ["alpha", "beta"])
        def test_run(name, fulldisk_record_outcome):
            tl = sample_timeline()
            tl.scenario = "scenario-" + name
            verdicts = evaluate(tl, Rules(), ["no_silent_write_loss", "recovery"])
            fulldisk_record_outcome(Outcome(tl.scenario, tl.volume, tl, verdicts))
    """)
    r = pytester.runpytest_subprocess("-n", "2", "--fulldisk-html", "out/report.html",
                                      "--junitxml", "out/junit.xml", "-p", "no:cacheprovider")
    r.assert_outcomes(passed=2)
    page = (pytester.path / "out" / "report.html").read_text()
    for name in ("alpha", "beta"):
        assert f'data-scenario="scenario-{name}"' in page
        assert f'id="chart-sc-scenario-{name}"' in page
    # no_silent_write_loss failed in both scenarios: one card at the top names both
    assert page.count('class="verdict fail"') == 1
    card = page[page.index('class="verdict fail"'):]
    card = card[:card.index("</article>")]
    assert "failed in 2 scenarios" in card
    assert "scenario-alpha" in card and "scenario-beta" in card
    junit = (pytester.path / "out" / "junit.xml").read_text()
    assert "fulldisk.verdict" in junit and "DiskSample" not in junit


def test_a_card_at_the_top_folds_long_evidence_the_table_keeps_it_all() -> None:
    report, tl = sample_report()
    v = report["verdicts"][0]  # type: ignore[index]
    v["evidence"] = [f"t={i}.00s line {i}" for i in range(15)]
    page = render_report(report, [tl])
    body = page[page.index("<body>"):]
    card = body[body.index('class="verdict fail"'):body.index("</article>")]
    assert card.count("<li>") == 15 and "9 more evidence lines" in card
    assert card.index("line 5</li>") < card.index("<details") < card.index("line 6</li>")
    table = body[body.index('class="verdicts"'):]
    assert "line 14</li>" in table


def test_charts_drawn_ahead_are_the_charts_the_page_draws_and_are_used_once() -> None:
    """``fulldisk run`` draws the charts while its last stacks are removed
    (``prepare_charts``): the page is the same as one drawn after the run."""
    from harness import report_html
    from harness.report_html import prepare_charts, render_run

    report, tl = sample_report()
    target = reference_target()
    after = render_run(report, [tl], target, inline_js=False)
    prepare_charts([tl], target)
    assert id(tl) in report_html._FIGURES
    ahead = render_run(report, [tl], target, inline_js=False)
    assert ahead == after and not report_html._FIGURES


def test_a_chart_whose_text_holds_a_script_end_tag_stays_one_script() -> None:
    """Hover texts carry log lines and request bodies verbatim: one holding ``</script>``
    must not end the chart's script element early (or start another)."""
    import json

    from harness.report_html import chart_html

    fig = figure(sample_timeline(), Rules())
    evil = "</script><script>alert(1)</script>\u2028&amp;"
    fig["data"][0]["hovertext"] = [evil]
    out = chart_html(fig, "chart-x")
    assert out.count("<script") == 1 and out.count("</script>") == 1
    assert out.endswith("</script>") and 'class="plotly-graph-div"' in out
    body = out[out.index("Plotly.newPlot(") + len("Plotly.newPlot("):out.rindex(")}")]
    args = json.loads(f"[{body}]")  # the call's arguments are JSON, the text intact
    assert args[0] == "chart-x" and args[1][0]["hovertext"] == [evil]
    assert args[3] == {"displaylogo": False, "responsive": True}


def test_the_chart_draws_with_the_invariants_own_classifier() -> None:
    """One classifier: the chart's classes are the invariants', so a chart cannot call a
    request a fake success that the rules count as a loud, unverified failure."""
    import harness.invariants as inv
    import harness.report_html as page

    assert page.request_outcome is inv.request_outcome
    assert tuple(page.OUTCOMES) == inv.OUTCOMES
    rules = Rules(request_seconds=5.0)
    write = _step(method="EXEC", status=0, write=True)
    loud = _step(method="EXEC", status=1, passed=False, readback=True)
    assert request_outcome(_flow(write, loud), 0, rules) == "ok"  # unverified, not a fake
    empty = _step(method="EXEC", status=0, passed=False, readback=True)
    assert request_outcome(_flow(write, empty), 0, rules) == "fake success"
