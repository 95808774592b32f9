"""The syslog/CEF alerts backend against a real rsyslog: what the SIEM receives, parsed by
rsyslog's own RFC 5424 parser, and the lab's alerts contract."""

from __future__ import annotations

import pytest

from handrail.ops.tools_config import SyslogAlerts as SyslogConfig
from handrail.tools.alerts_syslog import SyslogAlerts
from handrail.tools.errors import Conflict, Invalid, NotFound, Unavailable
from handrail.tools.journal import Journal
from tests.backend_servers import free_port, read_lines, rsyslog

pytestmark = pytest.mark.backends


@pytest.fixture
def server(tmp_path):
    with rsyslog(tmp_path / "rsyslog") as srv:
        yield srv


def client(srv, tmp_path, **over) -> SyslogAlerts:
    cfg = SyslogConfig(backend="syslog", **{"host": "127.0.0.1", "port": srv["port"], "hostname": "soc-worker-1",
                                            **over})
    return SyslogAlerts(cfg, Journal(tmp_path / "journal.db"))


async def test_alert_arrives_as_rfc5424_with_cef(server, tmp_path):
    a = client(server, tmp_path)
    alert = await a.raise_alert("P1", "CFO phone | isolated", "line one\nline two = done", source="phishing",
                                run_id="run-1", tags=["edr", "exec"])
    [line] = read_lines(server["file"], 1)
    pri, app, msgid, sd, msg = line.split("|", 4)
    assert pri == str(20 * 8 + 2)  # local4.crit
    assert app == "handrail" and msgid == "alert.raised"
    assert f'id="{alert.id}"' in sd and 'priority="P1"' in sd and 'run_id="run-1"' in sd
    assert msg.lstrip().startswith("CEF:0|Handrail|Handrail|0.1|alert.raised|CFO phone \\| isolated|10|")
    assert f"externalId={alert.id}" in msg and "msg=line one\\nline two \\= done" in msg
    assert "cs3=edr,exec" in msg and "cs2=run-1" in msg

    assert (await a.get_alert(alert.id)) == alert and [x.id for x in await a.list_alerts()] == [alert.id]
    acked = await a.acknowledge(alert.id, "alice")
    assert acked.acknowledged and acked.acknowledged_by == "alice"
    lines = read_lines(server["file"], 2)
    assert "alert.acknowledged" in lines[1] and "suser=alice" in lines[1]
    with pytest.raises(Conflict):
        await a.acknowledge(alert.id, "bob")
    with pytest.raises(NotFound):
        await a.acknowledge("ALR-999999", "bob")


async def test_priority_sets_severity_and_bad_priority_is_refused(server, tmp_path):
    a = client(server, tmp_path)
    for p in ("P2", "P3", "P4"):
        await a.raise_alert(p, f"t-{p}", "b", source="x")
    lines = read_lines(server["file"], 3)
    assert [int(ln.split("|")[0]) % 8 for ln in lines] == [3, 4, 5]
    assert [ln.split("|")[10] for ln in lines] == ["8", "5", "3"]  # CEF severity after the 5 rsyslog fields
    with pytest.raises(Invalid):
        await a.raise_alert("P9", "t", "b", source="x")  # type: ignore[arg-type]


async def test_idempotent_replay_sends_once(server, tmp_path):
    a = client(server, tmp_path)
    first = await a.raise_alert("P2", "t", "b", source="x", idempotency_key="k")
    assert await a.raise_alert("P2", "t", "b", source="x", idempotency_key="k") == first
    await a.raise_alert("P3", "other", "b", source="x")
    lines = read_lines(server["file"], 2)
    assert len(lines) == 2 and sum(first.id in ln for ln in lines) == 1


async def test_unreachable_siem_is_retryable_and_the_retry_sends(server, tmp_path):
    down = client(server, tmp_path, port=free_port(), timeout=1)
    with pytest.raises(Unavailable) as exc:
        await down.raise_alert("P1", "t", "b", source="x", idempotency_key="k2")
    assert exc.value.retryable
    up = client(server, tmp_path)
    alert = await up.raise_alert("P1", "t", "b", source="x", idempotency_key="k2")
    assert alert.id in read_lines(server["file"], 1)[0]


async def test_alerts_over_tls(tmp_path):
    from handrail.tools.errors import Unauthorized
    from tests.backend_servers import rsyslog as start_rsyslog

    with start_rsyslog(tmp_path / "rsyslog-tls", tls=True) as srv:
        a = client(srv, tmp_path, tls=True, ca_file=srv["ca_file"])
        alert = await a.raise_alert("P2", "over TLS", "b", source="x")
        [line] = read_lines(srv["file"], 1)
        assert alert.id in line and line.startswith(f"{20 * 8 + 3}|handrail|alert.raised|")
        untrusted = client(srv, tmp_path, tls=True)  # the system CAs do not know the test's certificate
        with pytest.raises(Unauthorized) as exc:
            await untrusted.raise_alert("P2", "t", "b", source="x")
        assert not exc.value.retryable
        assert len(read_lines(srv["file"], 1)) == 1


FORGED = ('<10>1 2026-01-01T00:00:00Z evil forged - FORGED - '
          'CEF:0|Handrail|Handrail|0.1|alert.raised|FORGED all clear|3|')


async def test_oversize_alert_is_shortened_and_cannot_forge_a_second_message(server, tmp_path):
    """rsyslog cuts a frame over its 8 KiB limit and reads the rest as a message of its own:
    an alert quoting attacker text must arrive as one message, shortened, never as two."""
    a = client(server, tmp_path)
    for filler in ("é" * 4000, "a\\" * 2100, "=\n" * 2100):  # multi-byte, backslashes, escapes that double
        alert = await a.raise_alert("P3", "long title " * 200, filler + FORGED, source="x",
                                    run_id='run"] [x@1 a="b"]\nnext', tags=["t"] * 50)
        acked = await a.acknowledge(alert.id, "alice")
        assert acked.acknowledged
    lines = read_lines(server["file"], 6, timeout=3)
    import time

    time.sleep(0.5)  # a forged tail would be written just after
    lines = read_lines(server["file"], 6, timeout=0)
    assert len(lines) == 6 and not any("FORGED" in ln for ln in lines)
    assert all(ln.split("|", 3)[2] in ("alert.raised", "alert.acknowledged") for ln in lines)
    assert all("suser=alice" in ln for ln in lines if "|alert.acknowledged|" in ln)
    assert "too long" not in (server["file"].parent / "rsyslogd.err").read_text()
    assert "oversize" not in (server["file"].parent / "rsyslogd.err").read_text()


async def test_an_alert_sent_again_after_a_crash_keeps_its_id(server, tmp_path):
    """The worker died after sending and before the journal recorded it: the retry sends again
    (syslog cannot be asked), with the same id, so the SIEM can tell it is the same alert."""
    import sqlite3

    a = client(server, tmp_path)
    first = await a.raise_alert("P2", "t", "b", source="x", idempotency_key="run-7:alert")
    db = sqlite3.connect(str(tmp_path / "journal.db"))
    db.execute("UPDATE calls SET state='pending', outcome=NULL WHERE key='run-7:alert'")  # the crash
    db.commit()
    db.close()
    again = await a.raise_alert("P2", "t", "b", source="x", idempotency_key="run-7:alert")
    assert again.id == first.id
    lines = read_lines(server["file"], 2)
    assert len(lines) == 2 and all(f"externalId={first.id}" in ln for ln in lines)
    assert [x.id for x in await a.list_alerts()] == [first.id]


async def test_a_hostile_subject_arrives_as_one_event_without_control_characters(server, tmp_path):
    a = client(server, tmp_path)
    await a.raise_alert("P2", "Phish: \x1b[2J\u202efdp.exe", "subject \x00cut\u2028\x85next\r\nCEF:0|fake|event",
                        source="phishing")
    [line] = read_lines(server["file"], 1)
    assert not any(c in line for c in "\x00\x1b\u2028\u202e\x85") and "#033" not in line  # escaped by us
    assert "\\\\x1b[2J" in line and "\\\\u202efdp.exe" in line and "\\nCEF:0|fake" in line
