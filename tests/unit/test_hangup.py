"""A dropped terminal (SIGHUP) does not stop a run: its output moves to the bundle's log and a
command in flight finishes (plugins/hangup.py, runbook/hangup.py, runbook/shell.py)."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from runbook.hangup import redirect, session_streams
from tests.bundles import read_summaries
from tests.sessions import TerminalSession, wait_ended
from tests.suite_runner import ROOT
from tests.unit.test_redaction import fake_installation


# These run the suites, which ask the Docker engine first: the tests' private one.
pytestmark = pytest.mark.usefixtures("docker_engine")

def test_every_descriptor_on_the_dead_terminal_moves_to_the_log(tmp_path: Path) -> None:
    master, terminal = os.openpty()
    copy = os.dup(terminal)  # as pytest's output capture keeps one
    log = tmp_path / "run.log"
    try:
        streams = session_streams((terminal,))
        os.close(master)  # the terminal hangs up
        with pytest.raises(OSError) as dead:
            os.write(copy, b"lost")
        assert dead.value.errno == errno.EIO
        assert set(redirect(streams, log, "hung up\n")) == {terminal, copy}
        os.write(copy, b"after\n")
        os.write(terminal, b"more\n")
        assert log.read_text() == "hung up\nafter\nmore\n"
        assert os.read(terminal, 100) == b""  # a read finds end of file
        assert log.stat().st_mode & 0o777 == 0o600
    finally:
        os.close(terminal)
        os.close(copy)


def test_a_pipe_whose_reader_died_moves_and_a_file_stays(tmp_path: Path) -> None:
    reader, writer = os.pipe()
    kept = os.open(tmp_path / "nohup.out", os.O_WRONLY | os.O_CREAT)
    try:
        streams = session_streams((writer, kept))
        os.close(reader)  # `| tee` died with the session
        with pytest.raises(BrokenPipeError):
            os.write(writer, b"lost")
        assert redirect(streams, tmp_path / "run.log", "") == [writer]
        os.write(writer, b"after\n")
        assert (tmp_path / "run.log").read_text() == "after\n"
    finally:
        os.close(writer)
        os.close(kept)


SUITE = '''
import logging
import os
import sys

from runbook.shell import run

# In flight when the terminal hangs up: says it started (naming the run's pid), waits to be let go.
COMMAND = """
import os, pathlib, sys, time
started, go_on = map(pathlib.Path, sys.argv[1:])
started.with_suffix(".tmp").write_text(str(os.getppid()))
os.replace(started.with_suffix(".tmp"), started)
while not go_on.exists():
    time.sleep(0.01)
print("the command outlived the hang-up")
"""


def test_goes_on_after_the_hang_up():
    answer = run([sys.executable, "-c", COMMAND, os.environ["HANGUP_STARTED"], os.environ["HANGUP_GO_ON"]],
                 timeout=60).stdout.strip()
    logging.getLogger("openwatch.progress").info(answer)
'''


def test_a_suite_run_outlives_its_terminal_and_so_does_its_command(pytester: pytest.Pytester,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    started, go_on, reports = tmp_path / "started", tmp_path / "go-on", tmp_path / "reports"
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("HANGUP_STARTED", str(started))
    monkeypatch.setenv("HANGUP_GO_ON", str(go_on))
    install = fake_installation(pytester.path)
    pytester.makeini("[pytest]\n")
    pytester.makeconftest('pytest_plugins = ("plugins.options", "plugins.bundle", "plugins.hangup")\n')
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "test_long_stage.py").write_text(SUITE)
    session = TerminalSession.start(
        [sys.executable, "-m", "pytest", "suites", "--install-dir", str(install), f"--reports-dir={reports}",
         "-p", "no:cacheprovider", "-o", "log_cli=true", "-o", "log_cli_level=INFO"], pytester.path)
    try:
        assert session.wait_until(started.exists, 60), session.text()
        run_pid = int(started.read_text())
        session.hang_up()
        go_on.touch()
        assert wait_ended(run_pid, 60)
    finally:
        session.close()
    assert "test session starts" in session.text() and "passed" not in session.text()
    summaries = read_summaries(reports)
    assert summaries, f"the run died with its terminal, which showed:\n{session.text()}"
    summary = summaries[0]
    assert summary["exit_status"] == 0, summary["tests"]  # 1: the command died of the hang-up
    log = Path(summary["artifacts"]["log"]).read_text()
    assert "SIGHUP: the terminal hung up; the run goes on to its end, output continues here" in log
    assert "the command outlived the hang-up" in log and "1 passed" in log, log
    assert f"report bundle: {summary['artifacts']['html']}" in log and "\x1b[" not in log
    assert "Terminal hang-up" in Path(summary["artifacts"]["html"]).read_text()
