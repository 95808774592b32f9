"""End to end on real servers: a reported message delivered into Dovecot is picked up by the
mailbox poller, the phishing runbook sinkholes its domain in an RPZ zone that Unbound
answers from, and the run's rollback brings the original DNS answer back. Every other
tool is the lab."""

from __future__ import annotations

import dns.asyncresolver
import pytest

from handrail.gate.models import RunState
from handrail.runbooks.phishing.rules import MailboxPoll, phishing_run_id
from tests.backend_servers import dovecot, unbound, write_tools_file
from tests.support import running_stack
from tests.test_phishing_runbook import POLICY, closed, completed, make_eml, roll_back
from workflows.phishing import PollMailbox

pytestmark = [pytest.mark.backends, pytest.mark.workflow]

ORIGINAL = "192.0.2.55"
AWARENESS = "10.20.0.80"


async def a_records(port: int, name: str) -> list[str]:
    r = dns.asyncresolver.Resolver(configure=False)
    r.nameservers, r.port, r.lifetime, r.cache = ["127.0.0.1"], port, 3.0, None
    return sorted(rd.address for rd in await r.resolve(name, "A"))


async def test_reported_message_to_unbound_sinkhole_and_back(time_env, tmp_path, monkeypatch):
    with dovecot(tmp_path / "dovecot") as imap, \
            unbound(tmp_path / "unbound", local_data=(f"parcel-fees.example. A {ORIGINAL}",
                                                      f"www.parcel-fees.example. A {ORIGINAL}")) as dns_server:
        monkeypatch.setenv("HANDRAIL_E2E_IMAP_PASSWORD", imap["password"])
        tools = write_tools_file(tmp_path / "tools.toml", {
            "mailbox": {"backend": "imap", "host": "127.0.0.1", "port": imap["imap_port"], "security": "starttls",
                        "username": imap["user"], "password_env": "HANDRAIL_E2E_IMAP_PASSWORD",
                        "ca_file": imap["ca_file"]},
            "dns": {"backend": "rpz", "zone_file": dns_server["zone_file"], "reload_command": dns_server["reload"],
                    "flush_command": dns_server["flush"], "resolver": f"127.0.0.1:{dns_server['port']}",
                    "awareness_address": AWARENESS},
        })
        async with running_stack(time_env.client, tmp_path, POLICY, tools=tools) as stack:
            assert type(stack.tools.mailbox).__name__ == "ImapMailbox"
            assert type(stack.tools.dns).__name__ == "RpzSinkhole"
            assert await a_records(dns_server["port"], "www.parcel-fees.example") == [ORIGINAL]
            delivered = await stack.tools.mailbox.deliver(
                make_eml("alice@corp.example", ["http://parcel-fees.example/pay"]))
            entry = await stack.tools.mailbox.get_message(delivered.id)
            run_id = phishing_run_id(entry.sha256, entry.id, entry.message_id)

            poll = await stack.start(PollMailbox.run, MailboxPoll())
            await closed(poll)
            assert (await poll.result()).started == [run_id]
            handle = stack.client.get_workflow_handle(run_id)
            stack.started.append(handle)
            status = await stack.wait_for(handle, completed, timeout=60)
            assert status.state == RunState.COMPLETED, status.error
            assert status.summary["sinkholed"] == ["parcel-fees.example"]
            assert (await stack.tools.mailbox.get_message(delivered.id)).status == "processed"
            assert await a_records(dns_server["port"], "parcel-fees.example") == [AWARENESS]
            assert await a_records(dns_server["port"], "www.parcel-fees.example") == [AWARENESS]
            step = next(s for s in status.steps if s.change.kind == "dns.sinkhole")
            record = stack.ledger.change(step.change_id)  # before/after read from the zone by the gate
            assert record.before == {"sinkholed": False, "address": None, "comment": None}
            assert record.after["sinkholed"] and record.after["address"] == AWARENESS

            report = await roll_back(stack, run_id)
            assert report.state == "rolled_back" and not report.failed, report
            assert await stack.tools.dns.get_sinkhole("parcel-fees.example") is None
            assert await a_records(dns_server["port"], "www.parcel-fees.example") == [ORIGINAL]
            assert await a_records(dns_server["port"], "parcel-fees.example") == [ORIGINAL]
