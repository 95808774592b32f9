"""A decision sent while Temporal is down or restarting is never reported as a crash or as
sent: the CLI says it was not delivered (or may not have been) and how to send it again."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from typer.testing import CliRunner

from starter import ops
from starter.output import CliError
from tests.support import key_file, make_policy, with_test_keys

pytestmark = pytest.mark.unit


class _Handle:
    def __init__(self, describe_error=None, signal_error=None):
        self.describe_error, self.signal_error, self.signals = describe_error, signal_error, []

    async def describe(self):
        if self.describe_error:
            raise self.describe_error
        return SimpleNamespace(status=WorkflowExecutionStatus.RUNNING)

    async def signal(self, name, arg):
        if self.signal_error:
            raise self.signal_error
        self.signals.append(arg)


def _client(handle):
    return SimpleNamespace(get_workflow_handle=lambda run_id: handle)


async def test_a_signal_refused_by_a_restarting_server_is_not_delivered():
    down = RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
    with pytest.raises(CliError, match="was not delivered: the run has not received it") as err:
        await ops.decide(_client(_Handle(signal_error=down)), "run-9", "bob", True, None, "")
    assert "handrail show run-9" in str(err.value) and "again" in str(err.value)
    with pytest.raises(CliError, match="was not delivered"):
        await ops.decide(_client(_Handle(describe_error=down)), "run-9", "bob", True, None, "")


async def test_a_signal_whose_answer_was_lost_may_have_been_delivered():
    lost = RPCError("deadline exceeded", RPCStatusCode.DEADLINE_EXCEEDED, b"")
    with pytest.raises(CliError, match="may not have been delivered"):
        await ops.decide(_client(_Handle(signal_error=lost)), "run-9", "bob", True, None, "")


def test_approve_with_temporal_down_says_the_decision_was_not_delivered(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    key_file("bob", home / "keys")
    (home / "policy.toml").write_text(with_test_keys(make_policy()))
    for name, value in dict(HANDRAIL_HOME=str(home), HANDRAIL_POLICY=str(home / "policy.toml"),
                            HANDRAIL_TEMPORAL_ADDRESS="127.0.0.1:1", HANDRAIL_USER="bob").items():
        monkeypatch.setenv(name, value)
    from starter.cli import app

    result = CliRunner().invoke(app, ["approve", "run-9", "--as", "bob"], env={**os.environ, "COLUMNS": "400"})
    assert result.exit_code == 1
    assert "Your decision was not delivered" in " ".join(result.output.split())
