"""On PostgreSQL every ledger write is one round trip: the ledger's lock never waits on the network.

Every worker on every host queues on the ledger's one write lock. A write that held it
across several round trips (BEGIN, the lock, the head, the inserts, COMMIT) would bound
the whole cluster's ledger throughput by the network's latency. The writes are server
functions (`handrail/gate/ledger_pg_functions.py`); this test counts the round trips a
write really makes, through a relay between the ledger and a real PostgreSQL server.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit, urlunsplit

import pytest

from handrail.gate.models import AuditEvent, Change, ChangeRecord, Mode
from tests.pg_support import new_database

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


class TurnCountingRelay:
    """A TCP relay that counts turns: each time the client speaks after the server has."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.turns = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            last = {"by": "server"}
            for src, dst, side in ((client, server, "client"), (server, client, "server")):
                threading.Thread(target=self._pump, args=(src, dst, side, last), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, side: str, last: dict) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            with self._lock:
                if side == "client" and last["by"] == "server":
                    self.turns += 1
                last["by"] = side
            dst.sendall(data)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def relayed(postgres_url) -> Iterator[tuple]:
    from handrail.gate.ledger_postgres import PostgresLedger

    url = new_database(postgres_url)
    parts = urlsplit(url)
    relay = TurnCountingRelay(parts.hostname, parts.port)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{relay.port}"
    ledger = PostgresLedger(urlunsplit(parts._replace(netloc=netloc)), pool_size=1)
    yield ledger, relay
    ledger.close()
    relay.close()


def _event(i: int) -> AuditEvent:
    return AuditEvent(id=f"run-1:{i}", at=T0, run_id="run-1", step_id="s01", event="step.requested", data={"i": i})


def _intent() -> ChangeRecord:
    return ChangeRecord(change_id="run-1/s01", run_id="run-1", step_id="s01",
                        change=Change(kind="firewall.egress_block", target="203.0.113.1"),
                        before={"blocked": False}, inverse=Change(kind="firewall.egress_unblock", target="203.0.113.1"),
                        mode=Mode.GUARDED, requested_by="alice", applied_at=T0)


def _turns(relay: TurnCountingRelay, write) -> int:
    before = relay.turns
    write()
    return relay.turns - before


def test_each_ledger_write_is_one_round_trip(relayed):
    ledger, relay = relayed
    ledger.append([_event(0)])  # the pool's connection is open and warm
    assert _turns(relay, lambda: ledger.append([_event(1), _event(2)])) == 1
    assert _turns(relay, lambda: ledger.check_limits("firewall.egress_block", "run-1", "run-1/s01", T0,
                                                     per_hour=10, per_run=None, audit=[_event(3)])) == 1
    record = ledger.begin_change(_intent(), [_event(4)])
    assert _turns(relay, lambda: ledger.begin_change(_intent(), [_event(5)])) == 1
    record.status, record.after = "applied", {"blocked": True}
    assert _turns(relay, lambda: ledger.finish_change(record)) == 1
    undone = AuditEvent(id="run-1/s01:reverted:change.reverted", at=T0, run_id="run-1", event="change.reverted",
                        data={"change_id": "run-1/s01", "reason": "rollback", "by": "bob", "verified": True,
                              "detail": "unblocked"})
    assert _turns(relay, lambda: ledger.record_revert("run-1/s01", "run-1", "rollback", "bob",
                                                      T0 + timedelta(minutes=1), True, "unblocked", undone)) == 1
    assert ledger.verify().ok  # and what the server wrote is the chain Python verifies
    assert [e["id"] for e in ledger.audit_rows()][:6] == ["run-1:0", "run-1:1", "run-1:2", "run-1:3", "run-1:4",
                                                          "run-1/s01:change.pending"]
