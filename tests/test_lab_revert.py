"""Reverting a change restores the estate hash exactly, for every tool with an inverse."""

from __future__ import annotations

import pytest

from lab.testing import in_process_lab

pytestmark = pytest.mark.unit


@pytest.fixture
async def lab(tmp_path):
    async with in_process_lab(tmp_path) as lab:
        yield lab


async def h(lab) -> str:
    return (await lab.tools.lab_state(counts_only=True)).hash


async def roundtrip(lab, do, undo) -> None:
    before = await h(lab)
    await do()
    assert await h(lab) != before
    await undo()
    assert await h(lab) == before


async def test_firewall(lab):
    fw = lab.tools.firewall
    await roundtrip(lab, lambda: fw.egress_add("198.51.100.0/24", "x", idempotency_key="a"),
                    lambda: fw.egress_remove("198.51.100.0/24", idempotency_key="a-undo"))


async def test_dns(lab):
    d = lab.tools.dns
    await roundtrip(lab, lambda: d.sinkhole("evil.example.com"),
                    lambda: d.remove_sinkhole("evil.example.com"))


async def test_edr(lab):
    e = lab.tools.edr
    await roundtrip(lab, lambda: e.set_telemetry("ph-rchen", "verbose"),
                    lambda: e.set_telemetry("ph-rchen", "normal"))
    await roundtrip(lab, lambda: e.isolate("ph-rchen", reason="phish"),
                    lambda: e.release("ph-rchen"))
    await roundtrip(lab, lambda: e.start_capture("lt-alice", "CASE-0002"),
                    lambda: e.stop_capture("lt-alice"))


async def test_siem(lab):
    s = lab.tools.siem
    await roundtrip(lab, lambda: s.watch("host", "lt-bob"), lambda: s.unwatch("host", "lt-bob"))


async def test_ips(lab):
    i = lab.tools.ips
    rule = 'drop ip any any -> 203.0.113.9 any (msg:"x"; sid:9200001;)'
    await roundtrip(lab, lambda: i.deploy_rule(rule), lambda: i.remove_rule(9200001))


async def test_proxy(lab):
    p = lab.tools.proxy
    await roundtrip(lab, lambda: p.block("evil.example"), lambda: p.unblock("evil.example"))
    await roundtrip(lab, lambda: p.tighten("evil.example"), lambda: p.relax("evil.example"))
    # tightening a seeded block, then relaxing, leaves the seeded block exactly as it was
    blocked = next(x for x in await p.list_indicators() if x.blocked)
    await roundtrip(lab, lambda: p.tighten(blocked.value), lambda: p.relax(blocked.value))


async def test_dlp_mailbox_iam_events(lab):
    alert = (await lab.tools.dlp.list_alerts("new"))[0]
    await roundtrip(lab, lambda: lab.tools.dlp.mark_processed(alert.id, by="bob"),
                    lambda: lab.tools.dlp.reopen(alert.id))
    msg = (await lab.tools.mailbox.list_messages("unprocessed"))[0]
    await roundtrip(lab, lambda: lab.tools.mailbox.mark_processed(msg.id),
                    lambda: lab.tools.mailbox.mark_unprocessed(msg.id))
    ev = (await lab.tools.iam.list_events("new"))[0]
    await roundtrip(lab, lambda: lab.tools.iam.mark_event_processed(ev.id, by="carol"),
                    lambda: lab.tools.iam.reopen_event(ev.id))


async def test_iam(lab):
    iam = lab.tools.iam
    await roundtrip(lab, lambda: iam.grant("finance-admins", "bob"),
                    lambda: iam.revoke("finance-admins", "bob"))
    ev = next(e for e in await iam.list_events("new")
              if e.kind == "group_member_added" and e.change_ticket is None)
    await roundtrip(lab, lambda: iam.revoke(ev.group, ev.principal),
                    lambda: iam.grant(ev.group, ev.principal))
    await roundtrip(lab, lambda: iam.disable_user("carol"), lambda: iam.enable_user("carol"))


async def test_nac(lab):
    n = lab.tools.nac
    mac = next(d.mac for d in await n.list_devices(type="access_point") if d.vendor == "TP-Link")
    await roundtrip(lab, lambda: n.disconnect(mac, reason="rogue"), lambda: n.reconnect(mac))


async def test_cmdb(lab):
    c = lab.tools.cmdb

    async def register():
        register.dev = await c.register_device(hostname="x", type="laptop", vendor="Dell",
                                               network="corp-wifi", mac="02:00:00:00:00:01")

    await roundtrip(lab, register, lambda: c.deregister_device(register.dev.id))


async def test_training_takedown_cases_intel(lab):
    t = lab.tools.training
    await roundtrip(lab, lambda: t.enroll("dave", "phishing-awareness"),
                    lambda: t.unenroll("dave", "phishing-awareness"))
    tk = lab.tools.takedown

    async def submit():
        submit.s = await tk.submit("https://evil.example/x", reason="phish")

    await roundtrip(lab, submit, lambda: tk.withdraw(submit.s.id))
    cases = lab.tools.cases
    await roundtrip(lab, lambda: cases.close_case("CASE-0002", "done"),
                    lambda: cases.reopen_case("CASE-0002"))

    async def attach():
        attach.a = await cases.add_artefact("CASE-0002", "pcap", "ART-1")

    await roundtrip(lab, attach, lambda: cases.remove_artefact("CASE-0002", attach.a.id))
    intel = lab.tools.intel
    old = await intel.fetch_feed("lab-c2")
    await roundtrip(lab, lambda: intel.publish_feed("lab-c2", b"0.0.0.0/0\n"),
                    lambda: intel.publish_feed("lab-c2", old))
