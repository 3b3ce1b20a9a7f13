"""A bad scenario file stops the command line: `check` exits 1 and `serve` exits 2 before binding its
port, both printing the loader's message (file, line, fix) and no traceback.

Every kind of bad file, and what its message says, is tested in process:
tests/unit/test_scenario_files.py.
"""

from __future__ import annotations

import time

from helpers import DUPLICATE_NAMES

EXIT_TIMEOUT = 15.0


def message_about(output: str, path) -> str:
    """The error message about `path`: from the path to the end of its line."""
    assert str(path) in output, output
    return output[output.index(str(path)) :].splitlines()[0]


def test_check_exits_1_and_serve_exits_2_before_binding_with_the_same_message(cli, spawn, answers, tmp_path):
    path = tmp_path / "duplicate_names.yaml"
    path.write_text(DUPLICATE_NAMES)

    checked = cli("check", str(path))
    server = spawn("--scenarios", str(path), ready=False)
    answered = False
    deadline = time.monotonic() + EXIT_TIMEOUT
    while server.proc.poll() is None and time.monotonic() < deadline:
        answered = answered or answers(server.base_url) is not None
        time.sleep(0.05)
    code = server.stop()

    assert checked.returncode == 1
    assert "Traceback" not in checked.stderr
    assert message_about(checked.stderr, path).startswith(f"{path}:6: duplicate rule name")
    assert code == 2
    assert not answered, "the health endpoint answered: the server bound its port"
    assert answers(server.base_url) is None
    output = server.stderr()
    assert "Uvicorn running" not in output
    assert "Traceback" not in output
    assert message_about(output, path) == message_about(checked.stderr, path)
