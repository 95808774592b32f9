"""The lab's notification sink and `handrail lab list notifications`, against an in-process lab."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from typer.testing import CliRunner

from handrail.notify import channels
from handrail.notify.settings import LabChannel
from handrail.tools import ToolClients
from lab.app import create_app
from lab.testing import lab_settings, prepare
from starter import lab_cmd
from tests.test_notify_channels import RUN, STEP, notice

pytestmark = pytest.mark.unit


@pytest.fixture
def lab(tmp_path, monkeypatch):
    settings = lab_settings(tmp_path)
    prepare(settings)
    app = create_app(settings)
    clients = lambda: ToolClients.from_settings(settings, transport=httpx.ASGITransport(app))  # noqa: E731
    monkeypatch.setattr(lab_cmd, "_clients", clients)
    yield clients
    app.state.store.close()


def test_notices_are_recorded_once_listed_and_kept_out_of_the_estate(lab):
    async def send_twice() -> tuple[str, str]:
        async with lab() as tools:
            before = (await tools.lab_state(counts_only=True)).hash
            for _ in range(2):  # a retried activity: the idempotency key records it once
                await channels.send_lab(tools.http, notice(), LabChannel(name="lab", type="lab"))
            await channels.send_lab(tools.http, notice("approved").model_copy(update={"outcome": "approved by bob"}),
                                    LabChannel(name="lab", type="lab"))
            return before, (await tools.lab_state(counts_only=True)).hash

    before, after = asyncio.run(send_twice())
    assert before == after  # a notice is not a change to a security tool
    listed = CliRunner().invoke(lab_cmd.lab_app, ["list", "notifications", "--json"])
    assert listed.exit_code == 0, listed.output
    doc = json.loads(listed.stdout)
    assert [n["event"] for n in doc["items"]] == ["waiting", "approved"]
    assert doc["items"][0]["approve_command"].startswith(f"handrail approve {RUN} --step {STEP}")
    table = CliRunner().invoke(lab_cmd.lab_app, ["list", "notifications"], env={"COLUMNS": "80"})
    assert table.exit_code == 0 and RUN in table.stdout and "approved by bob" in table.stdout
    assert all(len(line) <= 80 for line in table.stdout.splitlines())
    assert CliRunner().invoke(lab_cmd.lab_app, ["reset", "--json"]).exit_code == 0
    empty = CliRunner().invoke(lab_cmd.lab_app, ["list", "notifications"])
    assert "Nobody has been notified yet" in empty.stdout
