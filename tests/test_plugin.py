"""The pytest plugin, exercised through real pytest sessions (pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_markers_registered_under_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        @pytest.mark.chaos
        @pytest.mark.docker
        def test_x():
            pass
    """)
    r = pytester.runpytest("--strict-markers", "--collect-only", "-q", "-p", "no:xdist")
    r.assert_outcomes()
    assert r.ret == 0


def test_collect_only_starts_nothing_and_names_the_battery(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    from harness import engine

    run_id = f"fd-collect-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("FULLDISK_RUN_ID", run_id)  # anything it made would carry this
    pytester.makepyfile(test_b="""
        def test_battery(battery_case, battery_outcome):
            pass
    """)
    r = pytester.runpytest_subprocess("--collect-only", "-q", "-p", "no:xdist")
    r.stdout.fnmatch_lines(["*test_battery[[]sessions-no_silent_write_loss[]]*",
                            "*test_battery[[]downloads-core_isolation[]]*",
                            "*test_battery[[]session-flood-no_silent_write_loss[]]*"])
    assert engine.count_labelled(run_id).total == 0


def test_docker_required_fails_at_start_when_engine_is_down(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile("""
        import pytest
        @pytest.mark.docker
        def test_needs_docker():
            pass
    """)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setenv("CI", "true")
    r = pytester.runpytest_subprocess("-p", "no:xdist")
    assert r.ret == 3
    r.stdout.fnmatch_lines(["*No Docker engine answers*Hint*ci/setup*"])
    monkeypatch.delenv("CI")
    r = pytester.runpytest_subprocess("-p", "no:xdist", "-rs")
    r.assert_outcomes(skipped=1)
    r.stdout.fnmatch_lines(["*no Docker engine*"])


def test_bad_target_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_t(fulldisk_target):
            pass
    """)
    r = pytester.runpytest("--fulldisk-target", "missing.toml", "-p", "no:xdist")
    assert r.ret != 0
    r.stdout.fnmatch_lines(["*missing.toml: no such file*"])
