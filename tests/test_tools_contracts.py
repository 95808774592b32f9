"""Contract tests: every tool through its typed client against the in-process lab."""

from __future__ import annotations

import pytest

from handrail.tools.errors import Conflict, Invalid, NotFound, Unauthorized
from handrail.tools.takedown import Evidence
from lab.seed import fixtures_dir, own_samples
from lab.testing import in_process_lab

pytestmark = pytest.mark.unit


@pytest.fixture
async def lab(tmp_path):
    async with in_process_lab(tmp_path) as lab:
        yield lab


async def state_hash(lab) -> str:
    return (await lab.tools.lab_state(counts_only=True)).hash


async def test_firewall_contract(lab):
    fw = lab.tools.firewall
    seeded = await fw.egress_list()
    assert [e.value for e in seeded] == sorted(e.value for e in seeded)
    entry = await fw.egress_add("203.0.113.9", "phish C2")
    assert entry.value == "203.0.113.9" and entry.comment == "phish C2" and entry.added_at
    net = await fw.egress_add("198.51.100.0/24", "range")
    assert (await fw.egress_get("198.51.100.0/24")) == net
    assert await fw.egress_get("192.0.2.1") is None
    with pytest.raises(Conflict) as exc:
        await fw.egress_add("203.0.113.9", "again")
    assert exc.value.status == 409 and not exc.value.retryable
    for bad in ("not-an-ip", "198.51.100.1/24", "300.1.1.1"):
        with pytest.raises(Invalid):
            await fw.egress_add(bad, "x")
    ipv6 = await fw.egress_add("2001:DB8::/32", "v6")
    assert ipv6.value == "2001:db8::/32"
    edl = await fw.edl()
    assert edl.splitlines() == sorted(e.value for e in await fw.egress_list())
    assert "198.51.100.0/24" in edl.splitlines()
    await fw.egress_remove("198.51.100.0/24")
    with pytest.raises(NotFound):
        await fw.egress_remove("198.51.100.0/24")
    assert await fw.egress_get("198.51.100.0/24") is None


async def test_firewall_raw_shapes(lab):
    async with lab.client(lab.settings.lab_token) as c:
        r = await c.post("/firewall/egress", json={"value": "203.0.113.9", "comment": "c"})
        assert r.status_code == 201
        assert set(r.json()) == {"value", "comment", "added_at"}
        r = await c.delete("/firewall/egress/203.0.113.9")
        assert r.json() == {"removed": "203.0.113.9"}
        r = await c.get("/firewall/edl.txt")
        assert r.headers["content-type"].startswith("text/plain")
        r = await c.post("/firewall/egress", json={"comment": "no value"})
        assert r.status_code == 422 and r.json()["code"] == "invalid_input"
        assert r.json()["error"].endswith(".")


async def test_idempotent_replay_returns_first_response(lab):
    fw = lab.tools.firewall
    first = await fw.egress_add("203.0.113.50", "one", idempotency_key="run1-step1")
    h = await state_hash(lab)
    again = await fw.egress_add("203.0.113.50", "one", idempotency_key="run1-step1")
    assert again == first
    assert await state_hash(lab) == h
    await fw.egress_remove("203.0.113.50", idempotency_key="run1-step1-undo")
    await fw.egress_remove("203.0.113.50", idempotency_key="run1-step1-undo")  # replay: no 404
    alert1 = await lab.tools.alerts.raise_alert("P2", "t", "b", source="x", idempotency_key="k")
    h = await state_hash(lab)
    alert2 = await lab.tools.alerts.raise_alert("P2", "t", "b", source="x", idempotency_key="k")
    assert alert1 == alert2 and await state_hash(lab) == h
    assert len(await lab.tools.alerts.list_alerts()) == 1


async def test_idempotency_replays_errors_and_refuses_reuse(lab):
    fw = lab.tools.firewall
    with pytest.raises(NotFound):
        await fw.egress_remove("203.0.113.77", idempotency_key="k-err")
    await fw.egress_add("203.0.113.77", "now present")
    with pytest.raises(NotFound):  # replay of the stored 404, nothing removed
        await fw.egress_remove("203.0.113.77", idempotency_key="k-err")
    assert await fw.egress_get("203.0.113.77") is not None
    with pytest.raises(Invalid) as exc:
        await lab.tools.dns.sinkhole("evil.example", idempotency_key="k-err")
    assert exc.value.code == "idempotency_key_reused"


async def test_unauthorized_without_or_with_wrong_token(lab):
    async with lab.client() as c:
        r = await c.get("/firewall/egress")
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
        assert (await c.get("/_lab/health")).json() == {"ok": True}
    async with lab.client("wrong-token") as c:
        assert (await c.get("/edr/hosts")).status_code == 401
    from handrail.tools import ToolClients

    bad = ToolClients(lab.client("wrong-token"), token="wrong-token")
    async with bad:
        with pytest.raises(Unauthorized) as exc:
            await bad.firewall.egress_list()
    assert "wrong-token" not in str(exc.value) and not exc.value.retryable


async def test_alerts_contract(lab):
    a = lab.tools.alerts
    alert = await a.raise_alert("P1", "CFO phone isolated", "details", source="phishing",
                                run_id="run-1", tags=["edr"])
    assert alert.id == "ALR-000001" and not alert.acknowledged and alert.tags == ["edr"]
    acked = await a.acknowledge(alert.id, "alice")
    assert acked.acknowledged and acked.acknowledged_by == "alice"
    with pytest.raises(Conflict):
        await a.acknowledge(alert.id, "bob")
    with pytest.raises(NotFound):
        await a.acknowledge("ALR-999999", "bob")
    with pytest.raises(Invalid):
        await a.raise_alert("P9", "t", "b", source="x")  # type: ignore[arg-type]
    assert [x.id for x in await a.list_alerts()] == ["ALR-000001"]


async def test_mailbox_contract(lab):
    m = lab.tools.mailbox
    msgs = await m.list_messages("unprocessed")
    real = fixtures_dir() / "phishing"
    assert len(msgs) == len(own_samples()) + (len(list(real.glob("*.eml"))) if real.is_dir() else 0)
    first = msgs[0]
    raw = await m.fetch_raw(first.id)
    assert len(raw) == first.size and raw.lstrip()[:1].isalpha()
    again = await m.deliver(raw)
    assert again.id == first.id and not again.created
    new_raw = b"Message-ID: <lab-test-1@corp.example>\r\nSubject: hi\r\n\r\nbody\r\n"
    created = await m.deliver(new_raw, idempotency_key="deliver-1")
    assert created.created and created.message_id == "<lab-test-1@corp.example>"
    assert (await m.get_message(created.id)).subject == "hi"
    with pytest.raises(Invalid):
        await m.deliver(b"")
    done = await m.mark_processed(first.id)
    assert done.status == "processed"
    with pytest.raises(Conflict):
        await m.mark_processed(first.id)
    assert first.id not in {x.id for x in await m.list_messages("unprocessed")}
    await m.mark_unprocessed(first.id)
    with pytest.raises(NotFound):
        await m.fetch_raw("MSG-999999")
    await m.delete_message(created.id)
    with pytest.raises(NotFound):
        await m.get_message(created.id)


async def test_dns_contract(lab):
    d = lab.tools.dns
    s = await d.sinkhole("Evil-Login.example.com", comment="phish")
    assert s.domain == "evil-login.example.com" and s.address == "10.20.0.80"
    r = await d.resolve("www.evil-login.example.com")
    assert r.sinkholed and r.addresses == ["10.20.0.80"] and r.sinkhole == s.domain
    other = await d.resolve("benign.example.org")
    assert not other.sinkholed and other.addresses == (await d.resolve("benign.example.org")).addresses
    with pytest.raises(Conflict):
        await d.sinkhole("evil-login.example.com")
    with pytest.raises(Invalid):
        await d.sinkhole("not a domain")
    with pytest.raises(Invalid):
        await d.sinkhole("ok.example.com", address="nope")
    assert (await d.get_sinkhole("evil-login.example.com")) == s
    await d.remove_sinkhole("evil-login.example.com")
    assert await d.get_sinkhole("evil-login.example.com") is None
    with pytest.raises(NotFound):
        await d.remove_sinkhole("evil-login.example.com")


async def test_edr_contract(lab):
    e = lab.tools.edr
    hosts = await e.list_hosts()
    assert len(hosts) > 250
    assert any("executive" in h.tags and h.type == "phone" for h in hosts)
    assert any("production" in h.tags and h.type == "database" for h in hosts)
    host = await e.get_host("ph-rchen")
    assert host.owner == "rchen" and "executive" in host.tags
    with pytest.raises(NotFound):
        await e.get_host("no-such-host")
    assert (await e.set_telemetry("ph-rchen", "verbose")).telemetry == "verbose"
    with pytest.raises(Invalid):
        await e.set_telemetry("ph-rchen", "loud")  # type: ignore[arg-type]
    verdicts = {h.hostname: (await e.scan(h.hostname)).verdict for h in hosts[:40]}
    assert verdicts == {h.hostname: (await e.scan(h.hostname)).verdict for h in hosts[:40]}
    iso = await e.isolate("lt-alice", reason="test")
    assert iso.isolated and iso.isolation and iso.isolation.reason == "test"
    with pytest.raises(Conflict):
        await e.isolate("lt-alice")
    assert not (await e.release("lt-alice")).isolated
    with pytest.raises(Conflict):
        await e.release("lt-alice")
    mem = await e.collect_memory("lt-alice", case_id="CASE-0002")
    disk = await e.collect_disk("lt-alice")
    assert mem.kind == "memory" and disk.kind == "disk" and mem.id != disk.id
    assert (await e.get_artefact(mem.id)) == mem
    cap = await e.start_capture("lt-alice", "CASE-0002", filter="host 1.2.3.4")
    assert (await e.get_capture("lt-alice")) == cap
    with pytest.raises(Conflict):
        await e.start_capture("lt-alice", "CASE-0002")
    stopped = await e.stop_capture("lt-alice")
    assert stopped.stopped == cap.id and stopped.artefact.kind == "pcap"
    assert await e.get_capture("lt-alice") is None
    with pytest.raises(NotFound):
        await e.stop_capture("lt-alice")
    with pytest.raises(NotFound):
        await e.get_capture("no-such-host")


async def test_edr_planted_indicators_and_proliferation(lab):
    e = lab.tools.edr
    compromised = [h for h in await e.list_hosts() if (await e.scan(h.hostname)).verdict
                   == "compromised"]
    assert 2 <= len(compromised) <= 6
    scans = [await e.scan(h.hostname) for h in compromised]
    shared = set.intersection(*(set(s.indicators) for s in scans))
    assert shared
    indicator = min(shared)
    found = {s.hostname for s in await e.search(indicator)}
    assert found == {h.hostname for h in compromised}
    assert await e.search("nothing-like-this.example") == []
    with pytest.raises(Invalid):
        await e.search("")


async def test_siem_contract(lab):
    s = lab.tools.siem
    entry = await s.watch("user", "alice", reason="test")
    assert entry.kind == "user" and (await s.get_watch("user", "alice")) == entry
    with pytest.raises(Conflict):
        await s.watch("user", "alice")
    with pytest.raises(NotFound):
        await s.watch("user", "nobody-here")
    with pytest.raises(NotFound):
        await s.watch("host", "no-such-host")
    with pytest.raises(Invalid):
        await s.watch("printer", "x")  # type: ignore[arg-type]
    await s.watch("host", "lt-bob")
    assert {(w.kind, w.value) for w in await s.watchlist()} >= {("user", "alice"),
                                                                 ("host", "lt-bob")}
    await s.unwatch("user", "alice")
    assert await s.get_watch("user", "alice") is None
    with pytest.raises(NotFound):
        await s.unwatch("user", "alice")
    events = await s.search_events("source:edr severity:high")
    assert events and all(ev.source == "edr" and ev.severity == "high" for ev in events)
    assert len(await s.search_events("", limit=5)) == 5


async def test_ips_contract(lab):
    i = lab.tools.ips
    text = ('alert dns $HOME_NET any -> any 53 (msg:"Phish domain"; dns.query; '
            'content:"cdn-telemetry-sync.net"; sid:9100001; rev:1;)')
    rule = await i.deploy_rule(text, comment="run-1")
    assert rule.sid == 9100001 and rule.msg == "Phish domain" and rule.action == "alert"
    assert (await i.get_rule(9100001)) == rule
    assert (await i.rule_hits(9100001)).hits > 0
    with pytest.raises(Conflict):
        await i.deploy_rule(text)
    for bad in ("alert tcp any any -> any any", 'alert tcp any any -> any any (msg:"x";)',
                "nonsense"):
        with pytest.raises(Invalid):
            await i.deploy_rule(bad)
    await i.remove_rule(9100001)
    assert await i.get_rule(9100001) is None
    with pytest.raises(NotFound):
        await i.remove_rule(9100001)
    with pytest.raises(NotFound):
        await i.rule_hits(9100001)


async def test_proxy_contract(lab):
    p = lab.tools.proxy
    unknown = await p.get_indicator("https://never-seen.example/path?x=1")
    assert unknown.status == "allowed" and not unknown.tightened
    blocked = await p.block("https://evil.example/login/index.php", comment="phish")
    assert blocked.status == "blocked"
    assert (await p.get_indicator("https://evil.example/login/index.php")).blocked
    with pytest.raises(Conflict):
        await p.block("https://evil.example/login/index.php")
    t = await p.tighten("evil.example")
    assert t.status == "monitored" and t.logging == "extra" and t.packet_capture
    with pytest.raises(Conflict):
        await p.tighten("evil.example")
    assert (await p.relax("evil.example")).status == "allowed"
    with pytest.raises(NotFound):
        await p.relax("evil.example")
    assert (await p.unblock("https://evil.example/login/index.php")).status == "allowed"
    with pytest.raises(NotFound):
        await p.unblock("https://evil.example/login/index.php")
    with pytest.raises(Invalid):
        await p.block("has space")


async def test_dlp_contract(lab):
    d = lab.tools.dlp
    alerts = await d.list_alerts("new")
    assert 8 <= len(alerts) <= 14
    assert {a.channel for a in alerts} == {"email", "gateway", "usb"}
    assert {a.detector for a in alerts} == {"account_numbers", "encrypted_archive", "other"}
    assert any(a.user is None for a in alerts)
    hosts = {h.hostname for h in await lab.tools.edr.list_hosts()}
    assert any(a.host not in hosts for a in alerts)
    a = alerts[0]
    assert (await d.get_alert(a.id)) == a
    done = await d.mark_processed(a.id, by="bob", outcome="benign")
    assert done.status == "processed" and done.processing and done.processing.by == "bob"
    with pytest.raises(Conflict):
        await d.mark_processed(a.id, by="bob")
    assert a.id not in {x.id for x in await d.list_alerts("new")}
    await d.reopen(a.id)
    with pytest.raises(NotFound):
        await d.get_alert("DLP-9999")


async def test_cmdb_contract(lab):
    c = lab.tools.cmdb
    devices = await c.list_devices()
    assert len(devices) >= 290
    d = devices[0]
    assert (await c.get_device(d.id)) == d
    assert (await c.find_by_mac(d.mac.upper())) == d
    assert [x.id for x in await c.list_devices(ip=d.ip)] == [d.id]
    with pytest.raises(NotFound):
        await c.get_device("DEV-99999")
    approved = await c.approved()
    assert "laptop" in approved.types and "Dell" in approved.vendors
    nets = {n.cidr for n in await c.protected_networks()}
    assert {"161.71.0.0/16", "146.75.0.0/16"} <= nets
    new = await c.register_device(hostname="lt-new", type="laptop", vendor="Dell",
                                  network="corp-wifi", mac="AA-BB-CC-00-11-22", owner="alice")
    assert new.mac == "aa:bb:cc:00:11:22"
    with pytest.raises(Conflict):
        await c.register_device(hostname="x", type="laptop", vendor="Dell", network="n",
                                mac="aa:bb:cc:00:11:22")
    with pytest.raises(Invalid):
        await c.register_device(hostname="x", type="laptop", vendor="Dell", network="n",
                                mac="zz")
    with pytest.raises(NotFound):
        await c.register_device(hostname="x", type="laptop", vendor="Dell", network="n",
                                mac="aa:bb:cc:00:11:23", owner="ghost")
    await c.deregister_device(new.id)
    with pytest.raises(NotFound):
        await c.deregister_device(new.id)


async def test_iam_contract(lab):
    iam = lab.tools.iam
    users = {u.username for u in await iam.list_users()}
    assert {"alice", "bob", "carol", "dave"} <= users and len(users) >= 140
    priv = {g.name for g in await iam.privileged_groups()}
    assert {"domain-admins", "finance-admins"} <= priv
    m = await iam.grant("domain-admins", "alice")
    assert m.member_type == "user" and await iam.is_member("domain-admins", "alice")
    assert "domain-admins" in (await iam.get_user("alice")).groups
    with pytest.raises(Conflict):
        await iam.grant("domain-admins", "alice")
    await iam.revoke("domain-admins", "alice")
    with pytest.raises(Conflict):
        await iam.revoke("domain-admins", "alice")
    with pytest.raises(NotFound):
        await iam.grant("no-such-group", "alice")
    with pytest.raises(NotFound):
        await iam.grant("domain-admins", "ghost")
    assert (await iam.grant("server-admins", "lt-bob")).member_type == "device"
    events = await iam.list_events("new")
    assert any(e.change_ticket is None and e.privileged for e in events)
    assert any(e.principal_type == "device" for e in events)
    statuses = set()
    for e in events:
        if e.change_ticket:
            ticket = await iam.get_change(e.change_ticket)
            statuses.add(ticket.status if ticket else "unknown")
        if e.kind == "group_member_added":
            assert await iam.is_member(e.group, e.principal)
    assert {"approved", "pending", "rejected", "unknown"} <= statuses
    ev = events[0]
    assert (await iam.mark_event_processed(ev.id, by="carol")).status == "processed"
    with pytest.raises(Conflict):
        await iam.mark_event_processed(ev.id, by="carol")
    assert (await iam.reopen_event(ev.id)).status == "new"
    dis = await iam.disable_user("dave", reason="test")
    assert not dis.enabled
    with pytest.raises(Conflict):
        await iam.disable_user("dave")
    assert (await iam.enable_user("dave")).enabled


async def test_nac_contract(lab):
    n = lab.tools.nac
    devices = await n.list_devices()
    cmdb_macs = {d.mac for d in await lab.tools.cmdb.list_devices()}
    rogue = [d for d in devices if d.type == "access_point" and d.mac not in cmdb_macs]
    assert len(rogue) == 1 and rogue[0].vendor == "TP-Link"
    mac = rogue[0].mac
    off = await n.disconnect(mac, reason="rogue AP")
    assert not off.connected and off.disconnection and off.disconnection.reason == "rogue AP"
    with pytest.raises(Conflict):
        await n.disconnect(mac)
    assert (await n.reconnect(mac)).connected
    with pytest.raises(Conflict):
        await n.reconnect(mac)
    with pytest.raises(NotFound):
        await n.get_device("00:00:00:00:00:01")


async def test_intel_contract(lab):
    i = lab.tools.intel
    feeds = {f.name: f for f in await i.list_feeds()}
    assert {f.format for f in feeds.values()} >= {"ipset", "netset", "csv", "stix"}
    import hashlib
    import ipaddress
    import json

    bodies = {name: await i.fetch_feed(name) for name in feeds}
    for name, body in bodies.items():
        assert hashlib.sha256(body).hexdigest() == feeds[name].sha256
    stix = next(n for n, f in feeds.items() if f.format == "stix")
    assert json.loads(bodies[stix])["type"] == "bundle"

    def ips(fmt):
        name = next(n for n, f in feeds.items() if f.format == fmt)
        return [ln for ln in bodies[name].decode().splitlines() if ln and not ln.startswith("#")]

    ipset = {ipaddress.ip_address(x) for x in ips("ipset")}
    netset = [ipaddress.ip_network(x) for x in ips("netset")]
    assert any(ip in net for ip in ipset for net in netset)  # an IP inside another's network
    csv_text = bodies[next(n for n, f in feeds.items() if f.format == "csv")].decode()
    assert any(str(ip) in csv_text for ip in ipset)  # an IP in two feeds
    faulty = "# faulty\n0.0.0.0/0\n161.71.0.0/16\n"
    info = await i.publish_feed("lab-drop", faulty)
    assert info.format == "netset" and info.size == len(faulty)
    assert (await i.fetch_feed("lab-drop")).decode() == faulty
    new = await i.publish_feed("new-feed", b"1.2.3.4\n", format="ipset")
    assert new.name == "new-feed"
    with pytest.raises(Invalid):
        await i.publish_feed("other", b"x", format="xml")  # type: ignore[arg-type]
    with pytest.raises(Invalid):
        await i.publish_feed("no-format-yet", b"x")
    await i.delete_feed("new-feed")
    with pytest.raises(NotFound):
        await i.fetch_feed("new-feed")


async def test_cases_contract(lab):
    c = lab.tools.cases
    case = await c.create_case("Phishing wave", severity="high", run_id="run-9")
    assert case.status == "open" and case.id.startswith("CASE-")
    art = await c.add_artefact(case.id, "pcap", "ART-000001", description="capture")
    note = await c.add_note(case.id, "alice", "Contained.")
    got = await c.get_case(case.id)
    assert got.artefacts == [art] and got.notes == [note]
    assert [x.id for x in await c.list_cases(run_id="run-9")] == [case.id]
    await c.remove_artefact(case.id, art.id)
    with pytest.raises(NotFound):
        await c.remove_artefact(case.id, art.id)
    closed = await c.close_case(case.id, "remediated")
    assert closed.status == "closed"
    with pytest.raises(Conflict):
        await c.close_case(case.id, "again")
    assert (await c.reopen_case(case.id)).status == "open"
    with pytest.raises(NotFound):
        await c.get_case("CASE-9999")
    with pytest.raises(Invalid):
        await c.create_case("")


async def test_training_contract(lab):
    t = lab.tools.training
    modules = {m.id for m in await t.list_modules()}
    assert "phishing-awareness" in modules
    e = await t.enroll("carol", "phishing-awareness", reason="clicked")
    assert e.user == "carol" and e.due_at
    assert (await t.get_enrollment("carol", "phishing-awareness")) == e
    with pytest.raises(Conflict):
        await t.enroll("carol", "phishing-awareness")
    with pytest.raises(NotFound):
        await t.enroll("ghost", "phishing-awareness")
    with pytest.raises(NotFound):
        await t.enroll("carol", "no-such-module")
    await t.unenroll("carol", "phishing-awareness")
    assert await t.get_enrollment("carol", "phishing-awareness") is None
    with pytest.raises(NotFound):
        await t.unenroll("carol", "phishing-awareness")


async def test_takedown_contract(lab):
    t = lab.tools.takedown
    s = await t.submit("https://evil-login.example.com/a", reason="phishing",
                       evidence=[Evidence(kind="email", ref="MSG-000001")])
    assert s.domain == "evil-login.example.com" and s.evidence[0].ref == "MSG-000001"
    assert (await t.find_by_url("https://evil-login.example.com/a")) == s
    with pytest.raises(Conflict):
        await t.submit("https://evil-login.example.com/a", reason="again")
    with pytest.raises(Invalid):
        await t.submit("ftp://x", reason="bad")
    await t.withdraw(s.id)
    with pytest.raises(NotFound):
        await t.withdraw(s.id)
    with pytest.raises(NotFound):
        await t.get_submission(s.id)
