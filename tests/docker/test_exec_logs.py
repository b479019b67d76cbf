"""Exec probes bounded in time, with writes read back by nonce; log files on a service's
own filesystem read through the archive API from byte offsets (rotation, truncation)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness import Stack
from harness.probes import Prober
from harness.target import Target, target_from_dict
from harness.timeline import Timeline

pytestmark = pytest.mark.docker


def exec_target() -> Target:
    from harness.engine import BASE_IMAGE

    def probe(command: list[str], **kw: object) -> dict[str, object]:
        return {"kind": "exec", "service": "db", "command": command, **kw}

    return target_from_dict({
        "name": "execonly",
        "services": {"db": {"image": BASE_IMAGE, "user": "1000:1000",
                            "command": ["sh", "-c", "mkdir -p /tmp/log && exec sleep infinity"]}},
        "volumes": {"data": {"size": "256KiB", "owner": "1000:1000",
                             "mounts": [{"service": "db", "path": "/data"}]}},
        "probes": {
            "insert": probe(["sh", "-c", "printf '%s' '{body}' > /data/t-{nonce}"], write=True,
                            readback=["sha256sum", "/data/t-{nonce}"],
                            readback_expect="{body_sha256}", body_size="8KiB"),
            "hang": probe(["sleep", "30"], timeout=1),
            "missing": probe(["no-such-client", "--version"]),
            "signal": probe(["sh", "-c", "kill -9 $$"]),
            "shellmissing": probe(["sh", "-c", "no-such-client --version"]),
        },
        "logs": [{"kind": "file", "service": "db", "path": "/tmp/log/app.log"},
                 {"kind": "file", "service": "db", "path": "/data/inside.log"}],
    }, file="<execonly>")


@pytest.fixture(scope="module")
def db(fulldisk_make_stack: Callable[..., Stack]) -> Stack:
    # its probes hang and fail on purpose
    return fulldisk_make_stack(exec_target(), check_probes=False)


def sh(stack: Stack, script: str) -> None:
    code, out = stack.service("db").exec(["sh", "-c", script], user="1000:1000")
    assert code == 0, out


def test_exec_write_reads_back_by_nonce_and_persisting_damage_shows(db: Stack) -> None:
    pr = Prober(db, Timeline(scenario="exec"))
    first = pr.run("insert")
    assert [(s.write, s.readback, s.passed) for s in first.steps] == [
        (True, False, True), (False, True, True)], first.steps
    second = pr.run("insert")
    assert second.passed and second.steps[0].target != first.steps[0].target  # fresh nonce
    again = pr.reread(first)
    assert again is not None and again.passed and again.reread_of == first.t
    sh(db, "for f in /data/t-*; do : > $f; done")  # the writes are gone
    lost = pr.reread(first)
    assert lost is not None and not lost.passed
    s = lost.steps[0]
    # the readback answered (exit 0) with other content: a loss, not a failure to run
    assert s.readback and s.status == 0 and not s.could_not_run and not s.timed_out
    assert "expected 0 with" in (s.error or "")


def test_exec_timeout_is_a_hang_and_the_process_is_killed(db: Stack) -> None:
    import time

    pr = Prober(db, Timeline(scenario="exec"))
    t0 = time.monotonic()
    r = pr.run("hang")
    assert time.monotonic() - t0 < 5
    s = r.steps[0]
    assert s.timed_out and s.status is None and not s.passed and "killed" in (s.error or "")
    _, out = db.service("db").exec(
        ["sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"])
    assert "sleep 30" not in out, out


@pytest.mark.parametrize(("probe", "codes"), [("missing", (126, 127)), ("shellmissing", (127,)),
                                              ("signal", (137,))])
def test_commands_that_cannot_run_are_marked_not_refusals(db: Stack, probe: str,
                                                          codes: tuple[int, ...]) -> None:
    s = Prober(db, Timeline(scenario="exec")).run(probe).steps[0]
    assert s.status in codes and s.could_not_run and not s.passed, s
    assert "could not run" in (s.error or "") and f"probes.{probe}" in (s.error or "")


def test_service_log_file_from_offsets_rotation_and_truncation(db: Stack) -> None:
    pr = Prober(db, Timeline(scenario="logs"))
    label = "file:db:/tmp/log/app.log"

    def lines() -> list[str]:
        return [r.text for r in pr.collect_logs() if r.source == label]

    sh(db, "rm -f /tmp/log/app.log*")
    assert lines() == []
    sh(db, "printf 'a1\\na2\\n' >> /tmp/log/app.log")
    assert lines() == ["a1", "a2"]
    sh(db, "printf 'a3\\npart' >> /tmp/log/app.log")
    assert lines() == ["a3"]  # a line without its newline waits for the rest
    sh(db, "printf 'ial\\n' >> /tmp/log/app.log")
    assert lines() == ["partial"]
    sh(db, "mv /tmp/log/app.log /tmp/log/app.log.1 && printf 'b1\\n' > /tmp/log/app.log")
    assert lines() == ["b1"]  # rotated: the new file from its start, nothing twice
    sh(db, "mv /tmp/log/app.log /tmp/log/app.log.2 && "
           "for i in 1 2 3 4 5 6 7 8 9; do echo c$i-long-enough-to-pass-the-old-offset; done"
           " > /tmp/log/app.log")
    assert lines() == [f"c{i}-long-enough-to-pass-the-old-offset" for i in range(1, 10)]
    sh(db, ": > /tmp/log/app.log && printf 'd1\\n' >> /tmp/log/app.log")
    assert lines() == ["d1"]  # truncated in place (copytruncate)
    sh(db, "printf 'torn' >> /tmp/log/app.log")
    assert [r.text for r in pr.final_logs() if r.source == label] == ["torn"]
    sh(db, "printf 'x1\\n' >> /data/inside.log")
    rec = [r for r in pr.collect_logs() if r.source == "file:db:/data/inside.log"]
    assert [(r.text, r.volume) for r in rec] == [("x1", "data")]  # on a volume: it says so


def test_runs_start_after_what_earlier_runs_left_in_the_file(db: Stack) -> None:
    sh(db, "printf 'old1\\nold2\\n' >> /tmp/log/app.log")
    pr = Prober(db, Timeline(scenario="next"))
    pr.skip_existing_logs()
    sh(db, "printf 'new1\\n' >> /tmp/log/app.log")
    assert [r.text for r in pr.collect_logs() if r.source == "file:db:/tmp/log/app.log"] == [
        "new1"]
