"""The battery: generic scenarios over any target, and the incident told as scenarios.

Each scenario drives a Stack through explicit phases (steady, fill, act, free, recover)
into a Timeline and judges it with Invariants. Freeing always runs, also when a phase
fails or the run is interrupted. The same functions serve pytest (``scenarios/``),
``fulldisk run|gate`` and ``fulldisk selftest``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from .backend import Backend
from .invariants import INVARIANTS, Rules, Verdict, evaluate
from .loads import Downloads, ballast, drain, inodes, log_marks, writes_until_full
from .probes import Prober
from .stack import Stack
from .stack import announce as _announce
from .target import BUILTIN_VARS, Probe, Target
from .timeline import DiskSample, LoadEvent, PhaseName, ProbeResult, Timeline
from .volume import Volume

PER_VOLUME = ("no_silent_write_loss", "errors_surface", "graceful_refusal", "recovery",
              "health_truthful", "log_integrity")
MARKS = 3
PhaseListener = Callable[[str, str], None]
"""Called with (scenario, phase) as each phase starts: progress displays, tests."""
_LISTENERS: list[PhaseListener] = []
FLOOD = 40  # marked requests while full: more than a page of log lines, so the unused
            # tail of a log file's last page cannot absorb them all (tmpfs allocates pages)
REREADS = 20  # per probe: the latest runs made while full that are repeated after recovery
ROOM = 4  # pre-filling ballast leaves 1/ROOM of the free bytes and inodes for the app's load


@dataclass
class Outcome:
    """A finished scenario: its timeline and the verdicts of the invariants it checks."""

    scenario: str
    volume: str | None
    timeline: Timeline = field(repr=False)  # thousands of events: too long for a report
    verdicts: list[Verdict] = field(default_factory=list)
    error: str | None = None
    untested: dict[str, list[str]] = field(default_factory=dict)  # service -> folders written
                                                                  # outside the volumes

    def verdict(self, invariant: str) -> Verdict:
        """The verdict of one invariant."""
        for v in self.verdicts:
            if v.invariant == invariant:
                return v
        raise KeyError(f"{self.scenario} did not check {invariant}")

    @property
    def passed(self) -> bool:
        """No checked invariant failed and nothing broke (not judged is not a failure)."""
        return self.error is None and not any(v.failed for v in self.verdicts)


class Run:
    """One scenario run: the stack, its timeline and prober, and phase bookkeeping."""

    def __init__(self, stack: Backend, scenario: str, volume: str | None = None) -> None:
        self.stack = stack
        self.tl = Timeline(scenario=scenario, volume=volume)
        self.pr = Prober(stack, self.tl)
        self.rules = Rules.from_target(stack.target)
        self.volume = volume
        self.grows: dict[str, set[str]] = {}  # write probe -> volumes its runs grew in steady
        self.tl.facts["restarts_before"] = stack.restarts()
        self.pr.skip_existing_logs()  # log files are never emptied: judge only new records

    @contextmanager
    def phase(self, name: PhaseName, note: str = "") -> Iterator[None]:
        """Mark a phase; an exception inside names the phase it broke in."""
        self.tl.phase(name, self.volume, note)
        _announce(name)
        for listener in tuple(_LISTENERS):
            listener(self.tl.scenario, name)
        try:
            yield
        except Exception as e:
            e.add_note(f"fulldisk: failed during phase {name!r} of {self.tl.scenario}")
            raise

    def observe(self, *, marks: int = 0, downloads: bool = True,
                measure: bool = False) -> None:
        """Run every probe once, sample disks, health and counters, and read the logs.
        ``measure``: sample the disks around each write probe's run, so that the volumes
        it grows are known (see ``writes_on``)."""
        before = self.pr.disk()
        self.pr.health()
        for name, probe in self.stack.target.probes.items():
            if self.stack.target.downloads and name == self.stack.target.downloads.probe:
                if downloads:
                    Downloads(self.pr, seed=len(self.tl.events)).one(
                        seq=10_000 + len(self.tl.events))
                continue
            if measure and probe.write:
                before = self.pr.disk()
                self.pr.run(name)
                after = self.pr.disk()
                self.grows[name] = self.grows.get(name, set()) | set(
                    _grown(self.stack.target, {d.volume: d for d in before}, after))
                continue
            self.pr.run(name)
        if marks:
            log_marks(self.pr, marks)
        self.pr.collect_logs()

    def recover(self, *, baseline: set[str]) -> None:
        """Poll every probe until the baseline is green again or the bound passes."""
        deadline = time.monotonic() + self.stack.target.bounds.recovery_seconds
        start = self.tl.now()
        attempt = 0
        while True:
            attempt += 1
            self.observe(marks=1 if attempt == 1 else 0)
            last = {p.probe: p.passed for p in self.tl.probes() if p.t >= start}
            if all(last.get(n, False) for n in baseline) or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # poll interval inside a deadline-bounded loop
        self.reread()
        self.pr.final_logs()

    def reread(self) -> int:
        """Repeat, once space is back, what was asked while a volume was full: the readback
        of every acknowledged write (same nonce, values, cookies) and every probe whose
        requests carry a nonce. Damage that persists (a lost write, a poisoned entry) shows
        here, under no_silent_write_loss and recovery. Returns how many runs it repeated."""
        end = self.tl.of(ProbeResult)
        recover_at = max((m.t for m, _ in self.tl.windows() if m.phase == "recover"),
                         default=self.tl.now())
        by_probe: dict[str, list[ProbeResult]] = {}
        for p in end:
            if p.t >= recover_at or "reread" in p.tags or not self.tl.full_at(p.t):
                continue
            probe = self.stack.target.probes.get(p.probe)
            if probe is None or not _repeatable(probe, p):
                continue
            by_probe.setdefault(p.probe, []).append(p)
        done = 0
        for runs in by_probe.values():
            if len(runs) > REREADS:
                self.tl.facts.setdefault("rereads_skipped", {})[runs[0].probe] = \
                    len(runs) - REREADS
            for p in runs[-REREADS:]:
                done += self.pr.reread(p) is not None
        return done

    def writes_on(self, volume: str) -> list[str]:
        """The write probes that write on a volume: those whose runs in steady grew it
        (bytes or inodes), or, for a probe that grew no volume at all (a server writing
        into space it preallocated), those whose services (or one behind them) mount it,
        unless its role is bulk or logs."""
        target = self.stack.target
        spec = target.volumes.get(volume)
        out = []
        for name, probe in target.probes.items():
            if not probe.write or (target.downloads and name == target.downloads.probe):
                continue
            grown = self.grows.get(name)
            if grown:
                if volume in grown:
                    out.append(name)
                continue
            services = self.rules.probe_services.get(name, frozenset({probe.service}))
            if spec is not None and spec.role == "core" and any(
                    m.service in services for m in spec.mounts):
                out.append(name)
        return out

    def pressure(self, vol: Volume) -> None:
        """Write pressure on a full volume: each write probe that writes on it runs again
        and again until the app first refuses (a write not acknowledged, or not read back
        whole), at most ``[bounds] pressure_bytes`` of fresh content (default: the volume's
        size) and ``pressure_seconds``. The disk is sampled before every run (a request is
        judged by the disk at its own start) and topped up when the app freed space. What
        each probe did goes into the facts (``pressure``), for the invariants: a volume on
        which every write was accepted up to the bound never ran out, and is not judged."""
        target = self.stack.target
        spec = target.volumes.get(vol.name)
        limit = target.bounds.pressure_bytes or (spec.size if spec else 0)
        start = self.tl.now()
        found: dict[str, dict[str, object]] = {}
        for name in self.writes_on(vol.name):
            fresh = _fresh_bytes(target.probes[name])
            runs = [p for p in self.tl.in_phase(ProbeResult, "act") if p.probe == name
                    and not p.tags and self.tl.full_at(p.t, vol.name)]
            accepted, written, refused = 0, 0, False
            if runs:  # the act's own run of the probe, made while full
                if _accepted(runs[-1]):
                    accepted, written = 1, fresh
                else:
                    refused = True
            end = time.monotonic() + target.bounds.pressure_seconds
            while not refused and (not limit or written < limit or not fresh) \
                    and time.monotonic() < end:
                [sample] = self.pr.disk(vol.name)
                if not sample.full:
                    ballast(self.pr, vol, leave=0)
                    self.pr.disk(vol.name)
                r = self.pr.run(name, tags=("pressure",))
                if _accepted(r):
                    accepted += 1
                    written += fresh
                else:
                    refused = True
            bound = ("" if refused else "bytes" if fresh and limit and written >= limit
                     else "time")
            found[name] = {"volume": vol.name, "accepted": accepted, "bytes": written,
                           "fresh_per_run": fresh, "refused": refused, "bound": bound,
                           "bytes_bound": limit,
                           "seconds_bound": target.bounds.pressure_seconds,
                           "seconds": round(self.tl.now() - start, 3)}
            if accepted:
                self.tl.add(LoadEvent(self.tl.now(), "pressure", vol.name, written,
                                      f"{name}: {accepted} writes accepted while full"
                                      + (" before the first refusal" if refused
                                         else f", {bound} bound reached")))
        if found:
            self.tl.facts.setdefault("pressure", {}).update(found)

    def finish(self, invariants: tuple[str, ...]) -> Outcome:
        """Record restarts and judge the timeline."""
        before = self.tl.facts.get("restarts_before", {})
        after = self.stack.restarts()
        self.tl.facts["restarts"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        verdicts = evaluate(self.tl, self.rules, list(invariants))
        return Outcome(self.tl.scenario, self.volume, self.tl, verdicts)

    def baseline(self) -> set[str]:
        """Probes that passed in the steady phase."""
        return {p.probe for p in self.tl.in_phase(ProbeResult, "steady") if p.passed}


@contextmanager
def phase_listener(listener: PhaseListener, *, first: bool = False) -> Iterator[None]:
    """Call ``listener(scenario, phase)`` as each phase of any scenario starts, while the
    block runs (in this process; xdist workers run their own); ``first``: before the
    listeners already there (one that may hold or stop the phase)."""
    _LISTENERS.insert(0 if first else len(_LISTENERS), listener)
    try:
        yield
    finally:
        _LISTENERS.remove(listener)


def volume_scenario(stack: Backend, volume: str, *, scenario: str | None = None,
                    settle: float = 0.3) -> Outcome:
    """Steady, fill one volume to the last byte, act with every probe, free, recover.
    ``settle``: how long the disk must stay full before acting where the target's cleanup
    works on this volume (see hold_full); elsewhere nothing frees space behind the app's
    back, so the act starts as soon as the ballast has taken the last byte."""
    run = Run(stack, scenario or f"battery-{volume}", volume)
    vol = stack.volume(volume)
    cleanup = stack.target.cleanup
    if cleanup is None or cleanup.volume != volume:
        settle = 0
    invariants = PER_VOLUME + (("core_isolation",) if volume in run.rules.bulk_volumes else ())
    try:
        with run.phase("steady"):
            # Nothing the app made is removed before the fill: probes meet fresh writes
            # while full through their {nonce} (new pages, new ids), not through a wipe.
            run.observe(measure=True)
            log_marks(run.pr, MARKS)
            run.pr.collect_logs()
        with run.phase("fill"):
            hold_full(run, vol, settle=settle)
            run.pr.disk()
        with run.phase("act"):
            run.observe(marks=flood(stack.target, volume))
            run.pressure(vol)
            run.observe()
    finally:
        with run.phase("free"):
            drain(run.pr, vol)
            run.pr.disk()
    with run.phase("recover"):
        run.recover(baseline=run.baseline())
    return run.finish(invariants)


def flood(target: Target, volume: str) -> int:
    """Marked requests to send while a volume is full: FLOOD where a log of the app lives
    on it (the unused tail of a log file's last page must not absorb them all); elsewhere
    the app's logs are written to a disk that is not full, and MARKS show they go on."""
    return FLOOD if target.holds_logs(volume) else MARKS


def hold_full(run: Run, vol: Volume, *, settle: float = 0.3, deadline: float = 3.0) -> None:
    """Fill a volume to the last byte and top the ballast up until it has stayed full for
    ``settle`` seconds (or the deadline passes): the app's own cleanup may delete its own
    files under pressure (a cleaner deleting old downloads), the harness never does, so
    the disk is full once the app has nothing left it is willing to free."""
    ballast(run.pr, vol, leave=0)
    if settle <= 0:
        return  # nothing but the app's requests can free space (an in-process app)
    end = time.monotonic() + deadline
    full_since: float | None = None
    while time.monotonic() < end:
        [sample] = run.pr.disk(vol.name)
        now = time.monotonic()
        if not sample.full:
            ballast(run.pr, vol, leave=0)
            full_since = None
        elif full_since is None:
            full_since = now
        elif now - full_since >= settle:
            return
        time.sleep(0.05)  # poll interval of a deadline-bounded wait


def downloads_fill_shared_disk(stack: Stack) -> Outcome:
    """Exversion: downloads pile up on the one disk until logins stop sticking.

    Ballast stands for what else fills the disk and leaves 1/ROOM of it free; downloads
    then take the rest until the app refuses. Freeing removes only the ballast: the
    downloads are the app's files (runs on a stack of its own, see ``Case.fresh``).
    """
    target = stack.target
    assert target.downloads is not None
    run = Run(stack, "incident-downloads-fill-shared-disk", target.downloads.volume)
    vol = stack.volume(target.downloads.volume)
    cleaner = target.cleanup.service if target.cleanup else None
    try:
        with run.phase("steady"):
            run.observe()
        if cleaner:
            stack.service(cleaner).pause()  # the cron that ran too rarely
        with run.phase("fill", "ballast, then downloads until the app refuses or the disk "
                       "is full"):
            ballast(run.pr, vol, leave=max(vol.usage().bytes_free // ROOM, 64 * 1024))
            Downloads(run.pr, seed=1).until_refused(max_count=300, deadline=40)
            run.pr.disk()
        with run.phase("act"):
            run.observe(downloads=False)
            run.observe(downloads=False)
    finally:
        if cleaner:
            stack.service(cleaner).unpause()
        with run.phase("free"):
            drain(run.pr, vol)
            run.pr.disk()
    with run.phase("recover"):
        run.recover(baseline=run.baseline())
    # graceful_refusal is judged by the volume cases: an app that keeps its reserve never
    # lets this disk fill, so here it would have nothing to judge
    return run.finish(("core_isolation", "recovery"))


def cleanup_under_load(stack: Stack) -> Outcome:
    """The app's own cleanup against a sustained download rate: how full, how long full."""
    target = stack.target
    assert target.cleanup is not None
    run = Run(stack, "incident-cleanup-under-load", target.cleanup.volume)
    with run.phase("steady"):
        run.observe()
    with run.phase("act", f"{target.cleanup.rate:g}/s for {target.cleanup.duration:g} s"):
        Downloads(run.pr, seed=2).at_rate(target.cleanup.rate, target.cleanup.duration,
                                          sample=target.cleanup.volume)
    with run.phase("free", "the app's own cleaner frees space; nothing the app made is removed"):
        run.pr.disk(target.cleanup.volume)
    with run.phase("recover"):
        run.recover(baseline=run.baseline())
    return run.finish(("cleanup_keeps_up",))


def counter_against_served(stack: Backend) -> Outcome:
    """The download counter against downloads actually served: new, repeated, refused."""
    target = stack.target
    assert target.downloads is not None
    run = Run(stack, "incident-counter", target.downloads.volume)
    names = list(target.counters)
    dl = Downloads(run.pr, seed=3)
    with run.phase("steady"):
        for c in names:
            run.pr.counter(c)
        for _ in range(3):
            dl.one()
        for seq in (1, 2, 1):
            dl.one(seq=seq)  # the same export again: served from the file already made
    vol = stack.volume(target.downloads.volume)
    try:
        with run.phase("fill"):
            ballast(run.pr, vol, leave=0)
            run.pr.disk()
        with run.phase("act"):
            dl.burst(3)
            dl.one(seq=2)
    finally:
        with run.phase("free"):
            drain(run.pr, vol)
            run.pr.disk()
    with run.phase("recover"):
        dl.one(seq=3)
        for c in names:
            run.pr.counter(c)
    return run.finish(("counter_accuracy",))


def write_flood(stack: Stack) -> Outcome:
    """"Locked out": a write probe (a login leaving a session, an upload, an insert) runs
    until the volume it writes on is full. Each write must then fail loudly (or stick),
    never answer as if fine and forget it.

    Runs only where a write probe's runs grow a volume (bytes or inodes) in steady: that
    volume gets ballast leaving 1/ROOM free, the writes take the rest, sampled before
    each run; the flood stops when the volume is full or the bound ([bounds]
    pressure_seconds, 400 runs) passes, and a flood that never filled it is recorded as
    such (the volume never ran out). The act phase then keeps the pressure on until the
    app refuses. Freeing removes only the ballast (what the app wrote is its own), on a
    stack of its own (``Case.fresh``).
    """
    writers = [n for n, p in stack.target.probes.items() if p.write]
    writers.sort(key=lambda n: not stack.target.probes[n].core)
    run = Run(stack, "write-flood")
    grown: list[str] = []
    try:
        with run.phase("steady"):
            run.observe()
            before = {d.volume: d for d in run.pr.disk()}
            for _ in range(2):
                run.pr.run(writers[0])
            grown = _grown(stack.target, before, run.pr.disk())
            run.grows[writers[0]] = set(grown)  # the act's pressure: this writer, there
        with run.phase("fill", f"ballast on {', '.join(grown) or 'no volume'}, then "
                       f"{writers[0]} until it is full"):
            for name in grown:
                vol = stack.volume(name)
                u = vol.usage()
                ballast(run.pr, vol, leave=max(u.bytes_free // ROOM, 16 * 4096))
                inodes(run.pr, vol, leave=max(vol.usage().inodes_free // ROOM, 4))
            filled = writes_until_full(run.pr, writers[0], grown, 400,
                                       deadline=stack.target.bounds.pressure_seconds)
            if not filled:
                run.tl.facts["write_flood"] = {"volumes": grown, "why": (
                    f"{writers[0]} never filled {', '.join(grown)} within "
                    f"{stack.target.bounds.pressure_seconds:g}s" if grown else
                    f"{writers[0]}'s runs grew no volume in steady, so the flood had "
                    "nothing to fill")}
        with run.phase("act"):
            run.observe(marks=FLOOD)
            for name in filled:
                run.pressure(stack.volume(name))
    finally:
        with run.phase("free"):
            for name in grown:
                drain(run.pr, stack.volume(name))
            run.pr.disk()
    with run.phase("recover"):
        run.recover(baseline=run.baseline())
    return run.finish(("no_silent_write_loss", "errors_surface", "graceful_refusal",
                       "recovery"))


def _grown(target: Target, before: Mapping[str, DiskSample],
           after: Sequence[DiskSample]) -> list[str]:
    """Volumes whose bytes or inodes a writer's runs took (log volumes only if nothing
    else grew: they grow with every request)."""
    grew = []
    for d in after:
        b = before.get(d.volume)
        if b is not None and (d.bytes_free < b.bytes_free or d.inodes_free < b.inodes_free):
            grew.append(d.volume)
    data = [v for v in grew if target.volumes[v].role != "logs"]
    return data or grew


def _accepted(run: ProbeResult) -> bool:
    """A write probe's run the app took whole: every write step acknowledged and every
    step (readbacks included) passed. Anything else is the app running out (a refusal,
    a hang, or a write acknowledged and then lost)."""
    return run.passed and any(s.write for s in run.steps) and all(
        s.acknowledged for s in run.steps if s.write)


def _fresh_bytes(probe: Probe) -> int:
    """Fresh content one run of a write probe sends: its ``body_size`` (exec) or the sum
    of its steps' (http); 0 when none is declared (then only the time bound applies)."""
    if probe.kind == "exec":
        return probe.body_size or 0
    return sum(s.body_size or 0 for s in probe.steps)


def _repeatable(probe: Probe, run: ProbeResult) -> bool:
    """A run worth repeating after recovery: an acknowledged write with a readback, or a
    probe whose requests carry a nonce (so the repeat asks for what was made while full)."""
    if probe.write:
        acked = any(s.write and s.acknowledged for s in run.steps)
        return acked and (bool(probe.readback) or any(s.readback for s in probe.steps))
    texts = [*probe.command]
    for s in probe.steps:
        texts += [s.path, *s.form.values(), *s.headers.values(), str(s.json_body or "")]
    return any(f"{{{v}}}" in t for t in texts for v in BUILTIN_VARS)


@dataclass(frozen=True)
class Case:
    """A named scenario of the battery and the invariants it judges."""

    id: str
    volume: str | None
    shared: bool
    run: Callable[[Stack], Outcome]
    invariants: tuple[str, ...]
    incident: bool = False  # told as a named story in harness/stock.py
    # Leaves the app's own data behind (sessions, downloads) that only the app may remove:
    # runs on a stack of its own, started for it and torn down after, so no other case
    # meets its leftovers and nothing the app made is ever deleted by the harness.
    fresh: bool = False


def with_untested(outcome: Outcome, stack: Backend) -> Outcome:
    """The outcome with the folders the stack's services wrote outside its volumes so far
    (``Handle.changes``: the engine's diff, which costs the engine about a second when
    the overlay layers cannot be read here, so taken once per stack where possible)."""
    outcome.untested = stack.untested_paths()
    outcome.timeline.facts["untested_paths"] = outcome.untested
    return outcome


def run_case(case: Case, target: Target, stack_for: Callable[[bool], Stack], *,
             env: Mapping[str, Mapping[str, str]] | None = None,
             untested: bool = True) -> Outcome:
    """Run one case: on a fresh stack of its own when ``case.fresh``, else on the long-
    lived plain or shared stack ``stack_for(case.shared)`` (never reset between cases).
    A fresh stack's untested paths are read before it goes; a long-lived stack's after
    the case only with ``untested`` (a caller that reads them once per stack, before
    removing it, passes False: the diff is cumulative)."""
    if case.fresh:
        with Stack(target.shared() if case.shared else target, env=env) as s:
            return with_untested(case.run(s), s)
    s = stack_for(case.shared)
    outcome = case.run(s)
    return with_untested(outcome, s) if untested else outcome


def cases(volumes: list[str], bulk: set[str], *, downloads: bool, cleanup: bool,
          counters: bool, writes: bool = False) -> list[Case]:
    """Every case of the battery for a target with these volumes and features."""
    out: list[Case] = []
    for v in volumes:
        inv = PER_VOLUME + (("core_isolation",) if v in bulk else ())
        out.append(Case(v, v, False, lambda s, v=v: volume_scenario(s, v), inv))  # type: ignore[misc]
    # With one volume the shared disk is that same disk again: its scenario would judge
    # nothing new and cost a second stack.
    many = len(volumes) > 1
    if many:
        out.append(Case("shared", "shared", True, lambda s: volume_scenario(s, "shared"),
                        PER_VOLUME))
    if writes:
        out.append(Case("write-flood", None, False, write_flood,
                        ("no_silent_write_loss", "errors_surface", "graceful_refusal",
                         "recovery"), fresh=True))
    if downloads:
        out.append(Case("downloads-fill-shared-disk", None, many, downloads_fill_shared_disk,
                        ("core_isolation", "recovery"), True, fresh=True))
    if cleanup:
        out.append(Case("cleanup-under-load", None, False, cleanup_under_load,
                        ("cleanup_keeps_up",), True, fresh=True))
    if downloads and counters:
        out.append(Case("counter", None, False, counter_against_served, ("counter_accuracy",),
                        True))
    return out


def _feeds(target: Target) -> dict[str, bool]:
    """Whether the target's config feeds each invariant (absent: always fed)."""
    return {
        "no_silent_write_loss": any(p.write for p in target.probes.values()),
        # an exec write is a request too: a timeout is a hang, a fast non-zero exit a
        # refusal, an acknowledged write that does not read back a fake success
        "graceful_refusal": any(p.kind == "http" or p.write for p in target.probes.values()),
        "health_truthful": target.health is not None,
        "log_integrity": any(log.kind == "file" for log in target.logs),
        "core_isolation": bool(target.core_probes),
        "cleanup_keeps_up": target.cleanup is not None,
        "counter_accuracy": bool(target.counters) and target.downloads is not None,
    }


def fed_invariants(target: Target) -> list[str]:
    """The invariants a target's config feeds (declares the probes, logs, health... for)."""
    feeds = _feeds(target)
    return [name for name in INVARIANTS if feeds.get(name, True)]


def battery_cases(target: Target) -> list[Case]:
    """The battery's cases for a target."""
    bulk = {n for n, v in target.volumes.items() if v.role == "bulk"}
    # Only the invariants this target can feed: a check that cannot fail is a defect.
    needs = _feeds(target)
    out = cases(list(target.volumes), bulk, downloads=target.downloads is not None,
                cleanup=target.cleanup is not None, counters=bool(target.counters),
                writes=needs["no_silent_write_loss"])
    return [replace(c, invariants=tuple(i for i in c.invariants if needs.get(i, True)))
            for c in out]
