"""The battery never deletes what the app made, and runs whole on a target without any
HTTP port (exec probes only): log marks are skipped with a stated reason."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness import Stack
from harness.battery import battery_cases, run_case
from harness.target import Target, target_from_dict

pytestmark = pytest.mark.docker

START = ("mkdir -p /data/app-made && echo seeded-by-app > /data/app-made/marker && "
         "echo app started >&2 && exec sleep infinity")


def keeper() -> Target:
    from harness.engine import BASE_IMAGE

    return target_from_dict({
        "name": "keeper",
        "services": {"db": {"image": BASE_IMAGE, "user": "1000:1000", "cap_drop": ["ALL"],
                            "command": ["sh", "-c", START],
                            "ready": {"log": "app started", "timeout": 20}}},
        "volumes": {"data": {"size": "512KiB", "inodes": 64, "owner": "1000:1000",
                             "mounts": [{"service": "db", "path": "/data"}]}},
        "probes": {"put": {
            "kind": "exec", "service": "db", "core": True, "write": True,
            "body_size": "16KiB", "timeout": 5,
            "command": ["sh", "-c", "printf '%s' '{body}' | head -c {body_bytes} "
                                    "> /data/row-{nonce} 2>>/proc/1/fd/2"],
            "readback": ["sha256sum", "/data/row-{nonce}"],
            "readback_expect": "{body_sha256}"}},
        "logs": [{"kind": "container", "service": "db"}],
    }, file="<keeper>")


def test_exec_only_battery_keeps_app_files_and_reads_writes_back(
        fulldisk_make_stack: Callable[..., Stack]) -> None:
    target = keeper()
    plain = fulldisk_make_stack(target)
    shared = fulldisk_make_stack(target.shared())
    ids = [c.id for c in battery_cases(target)]
    assert ids[0] == "data" and "write-flood" in ids, ids  # the whole battery, no HTTP
    outcomes = {c.id: run_case(c, target, lambda sh: shared if sh else plain)
                for c in battery_cases(target)}
    for case_id, o in outcomes.items():
        assert o.error is None, (case_id, o.error)
        assert "publishes an HTTP port" in o.timeline.facts.get("log_marks", ""), o.timeline.facts
        v = o.verdict("no_silent_write_loss")
        assert v.judged and v.passed, (case_id, v.summary, v.evidence)
    data = outcomes["data"]
    rereads = [p for p in data.timeline.probes("put") if "reread" in p.tags]
    writes_while_full = [p for p in data.timeline.probes("put")
                         if p.t < rereads[0].t and data.timeline.full_at(p.t)] if rereads else []
    assert all(p.passed for p in rereads)
    assert not writes_while_full or all(not p.passed for p in writes_while_full)
    for st in (plain, shared):  # what the app made at start is still there after the fills
        code, out = st.service("db").exec(["cat", "/data/app-made/marker"])
        assert code == 0 and "seeded-by-app" in out, out
    code, out = plain.service("db").exec(["sh", "-c", "ls /data | grep -c '^row-fd'"])
    assert code == 0 and int(out) >= 2, out  # rows written by probes stay: no wipe
