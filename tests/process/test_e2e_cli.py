"""The `payments-sandbox` command line: help, the port from the environment, bad flags, signals."""

from __future__ import annotations

import signal

import pytest

SERVE_FLAGS = [
    "--host",
    "--port",
    "--spec",
    "--log-level",
    "--scenarios",
    "--no-default-scenarios",
    "--jwt-secret",
    "--control-token",
    "--journal-size",
    "--idempotency-keys",
    "--access-log",
]


def test_help_lists_the_commands_and_top_level_flags(cli):
    result = cli("--help")

    assert result.returncode == 0
    for word in ("serve", "check", "--version", "--help", "PAYMENTS_SANDBOX_PORT"):
        assert word in result.stdout, word


@pytest.fixture(scope="module")
def serve_help(cli):
    return cli("serve", "--help")


def test_serve_help_exits_0(serve_help):
    assert serve_help.returncode == 0


@pytest.mark.parametrize("flag", SERVE_FLAGS)
def test_serve_help_mentions_every_flag(serve_help, flag):
    assert flag in serve_help.stdout


def test_serve_help_mentions_the_environment_variables(serve_help):
    assert "PAYMENTS_SANDBOX_" in serve_help.stdout


def test_check_help_describes_its_arguments(cli):
    result = cli("check", "--help")

    assert result.returncode == 0
    assert "FILE" in result.stdout


def test_port_comes_from_the_environment(spawn, unused_port, tenants):
    server = spawn(port=unused_port, env={"PAYMENTS_SANDBOX_PORT": str(unused_port)})

    response = tenants(server.base_url).charge(1500)

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("port", ["0", "abc", "65536", "-1"])
def test_bad_port_flag_exits_2_with_a_clear_message(cli, port):
    result = cli("serve", f"--port={port}")

    assert result.returncode == 2
    assert "--port" in result.stderr
    assert repr(port) in result.stderr
    assert "65535" in result.stderr


def test_bad_port_in_the_environment_exits_2_naming_the_variable(cli):
    result = cli("serve", env={"PAYMENTS_SANDBOX_PORT": "abc"})

    assert result.returncode == 2
    assert "PAYMENTS_SANDBOX_PORT" in result.stderr
    assert "abc" in result.stderr


def test_unknown_flag_exits_2(cli):
    result = cli("serve", "--no-such-flag")

    assert result.returncode == 2
    assert "--no-such-flag" in result.stderr


def test_sigint_stops_the_server_with_exit_code_0(spawn, answers):
    server = spawn()

    code = server.stop(signal.SIGINT)

    assert code == 0, server.stderr()
    assert answers(server.base_url) is None


# SIGTERM: every server these tests start is stopped with SIGTERM at teardown, which asserts exit code 0.
