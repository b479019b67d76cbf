"""Signals the app gives about its disk: cleanup_keeps_up, counter_accuracy, health_truthful."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..timeline import (
    CounterSample,
    DiskSample,
    HealthSample,
    LoadEvent,
    ProbeResult,
    Timeline,
)
from ._evidence import (
    EXCERPT,
    clip,
    fmt_sample,
    fmt_step,
    needs_a_working_target,
    not_judged,
    phase_spans,
    plural,
    timed_steps,
    ts,
    verdict_of,
)
from .rules import Rules
from .verdict import Verdict

# --- 6. cleanup_keeps_up -----------------------------------------------------------------

@needs_a_working_target
def cleanup_keeps_up(tl: Timeline, rules: Rules) -> Verdict:
    """With downloads arriving, cleanup keeps usage under the ceiling and full time short."""
    name = "cleanup_keeps_up"
    vol = rules.cleanup_volume
    if vol is None:
        return not_judged(tl, name, "the target declares no cleanup")
    samples = [d for d in tl.in_phase(DiskSample, "act") if d.volume == vol]
    downloads = [e for e in tl.of(LoadEvent) if e.load == "download"]
    if not samples or not downloads:
        return not_judged(tl, name, f"no downloads with disk samples of {vol} during the "
                           "act phase")
    peak = max(samples, key=lambda d: d.used_fraction)
    peak_pct = 100 * peak.used_fraction
    acts = phase_spans(tl, "act")
    full: list[tuple[float, float]] = []
    for a, b, _ in tl.full_spans(vol):
        for lo, hi in acts:
            if min(b, hi) > max(a, lo):
                full.append((max(a, lo), min(b, hi)))
    full_seconds = sum(b - a for a, b in full)
    runs = [p for p in tl.in_phase(ProbeResult, "act") if "download" in p.tags]
    ok = sum(1 for p in runs if p.passed)
    if not ok:
        # an app that refuses every download keeps its disk empty: nothing was cleaned
        return not_judged(tl, name, f"no download was served during the act phase "
                           f"({len(runs)} attempted, all refused), so the cleanup had "
                           "nothing to keep up with")
    evidence = [f"peak: {fmt_sample(peak)}",
                f"downloads: {len(runs)} attempted, {ok} served, {len(runs) - ok} refused "
                f"({len(downloads)} download loads)"]
    evidence += [f"full {ts(a)}-{ts(b)} ({b - a:.2f}s)" for a, b in full]
    problems = []
    if peak_pct > rules.cleanup_ceiling:
        problems.append(f"usage of {vol} peaked at {peak_pct:.0f}% (ceiling "
                        f"{rules.cleanup_ceiling:g}%)")
    if full_seconds > rules.cleanup_max_full_seconds:
        problems.append(f"{vol} was full for {full_seconds:.2f}s (bound "
                        f"{rules.cleanup_max_full_seconds:g}s)")
    if problems:
        return verdict_of(tl, name, False, "cleanup did not keep up: " + "; ".join(problems),
                        evidence)
    return verdict_of(tl, name, True,
                    f"judged {plural(len(samples), 'disk sample')} of {vol} while {ok} of "
                    f"{plural(len(runs), 'download')} were served: cleanup kept it at or "
                    f"under {rules.cleanup_ceiling:g}% (peak {peak_pct:.0f}%, full "
                    f"{full_seconds:.2f}s)", evidence)


# --- 7. counter_accuracy -----------------------------------------------------------------

@needs_a_working_target
def counter_accuracy(tl: Timeline, rules: Rules) -> Verdict:
    """A declared counter moves by exactly the number of successful runs of its probe."""
    name = "counter_accuracy"
    samples = tl.of(CounterSample)
    judged = 0
    wrong: list[str] = []
    evidence: list[str] = []
    for counter, probe in sorted(rules.counters.items()):
        values = [c for c in samples if c.counter == counter and c.value is not None]
        if len(values) < 2:
            evidence.append(f"{counter}: read {plural(len(values), 'time')} (needs two "
                            "readings, not judged)")
            continue
        first, last = values[0], values[-1]
        assert first.value is not None and last.value is not None
        delta = last.value - first.value
        window = [p for p in tl.probes(probe) if first.t <= p.t <= last.t]
        observed = sum(1 for p in window if p.passed)
        if not observed:
            # a counter that never moves would "match" zero successes
            evidence.append(f"{counter}: read at {ts(first.t)} and {ts(last.t)}, but no "
                            f"successful {probe} run between the readings (not judged; "
                            f"{len(window)} failed)")
            continue
        judged += 1
        failures = [p for p in window if not p.passed]
        line = (f"{counter}: {first.value:g} at {ts(first.t)} -> {last.value:g} at "
                f"{ts(last.t)} (moved {delta:g}); {observed} successful {probe} runs, "
                f"{len(failures)} failed")
        evidence.append(line)
        if abs(delta - observed) > 1e-9:
            wrong.append(f"{counter} moved {delta:g} for {observed} successful {probe} runs")
            for p in failures:
                bad = next(((t, s) for t, _, s in timed_steps(p) if not s.passed), None)
                if bad:
                    evidence.append(f"  failed: {fmt_step(p, bad[1], bad[0])}")
    if not judged:
        return not_judged(tl, name, "no declared counter was read twice with a successful "
                           "run of its probe in between", evidence)
    if wrong:
        return verdict_of(tl, name, False, "; ".join(wrong), evidence)
    return verdict_of(tl, name, True,
                    f"judged {plural(judged, 'counter')}: each moved by exactly the "
                    "successful runs observed", evidence)


# --- 8. health_truthful ------------------------------------------------------------------

def _inode_fraction(d: DiskSample) -> float:
    """Fraction of inodes in use, 0..1."""
    return (d.inodes_total - d.inodes_free) / d.inodes_total if d.inodes_total else 0.0


@dataclass
class _HealthCheck:
    """Health samples compared with the disks at the time they were taken."""

    judged: int = 0  # samples with a disk sample to compare with
    while_full: int = 0
    calm: int = 0  # taken with every volume far from full
    lies: list[str] = field(default_factory=list)  # "healthy" while a volume was full
    alarms: list[str] = field(default_factory=list)  # not healthy with every volume calm

    def add(self, h: HealthSample, latest: dict[str, DiskSample], healthy_below: float) -> None:
        """Compare one health sample with the latest disk sample of each volume."""
        if not latest:
            return
        self.judged += 1
        full = [d for d in latest.values() if d.full]
        raw = f" ({clip(h.raw, EXCERPT)!r})" if h.raw else ""
        if full:
            self.while_full += 1
            if h.status == "healthy":
                self.lies.append(f"{ts(h.t)} health said {h.status}{raw} while full: "
                                 + "; ".join(fmt_sample(d) for d in full))
            return
        if not all(max(d.used_fraction, _inode_fraction(d)) < healthy_below
                   for d in latest.values()):
            return  # neither full nor calm: health may say either
        self.calm += 1
        if h.status != "healthy":
            busiest = max(latest.values(),
                          key=lambda d: max(d.used_fraction, _inode_fraction(d)))
            self.alarms.append(f"{ts(h.t)} health said {h.status}{raw} with every volume "
                               f"under {100 * healthy_below:g}% used; busiest: "
                               f"{fmt_sample(busiest)}")


@needs_a_working_target
def health_truthful(tl: Timeline, rules: Rules) -> Verdict:
    """Health says not-healthy when a volume is full, healthy when every volume is calm."""
    name = "health_truthful"
    health = tl.of(HealthSample)
    if not health:
        return not_judged(tl, name, "no health sample was taken")
    check = _HealthCheck()
    disks = tl.disk_index()
    for h in health:
        check.add(h, disks.latest(h.t), rules.healthy_below)
    if not check.judged:
        return not_judged(tl, name, "no health sample had a disk sample to compare with")
    calm_words = f"with every volume under {100 * rules.healthy_below:g}% used"
    if not (check.lies or check.alarms) and not (check.while_full and check.calm):
        # a health that always says "failing" (or "ok") must be seen on both sides
        missing = [what for what, n in (("while a volume was full", check.while_full),
                                        (calm_words, check.calm)) if not n]
        return not_judged(tl, name, f"no health sample was taken {' or '.join(missing)} "
                          f"({plural(check.judged, 'sample')} compared with the disks)")
    problems = []
    if check.lies:
        problems.append(f"health said healthy {plural(len(check.lies), 'time')} while a "
                        "volume was full")
    if check.alarms:
        problems.append(f"health raised {plural(len(check.alarms), 'false alarm')} with "
                        "every volume far from full")
    if problems:
        note = ("" if check.while_full
                else " (no health sample was taken while a volume was full)")
        return verdict_of(tl, name, False, "; ".join(problems) + note,
                          check.lies + check.alarms)
    return verdict_of(tl, name, True,
                      f"judged {plural(check.judged, 'health sample')} ({check.while_full} "
                      f"taken while full, {check.calm} with every disk calm): all matched "
                      "the disks")
