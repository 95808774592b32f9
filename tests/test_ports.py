"""Ports for components that are restarted on the same port (tests, benchmarks, PostgreSQL)."""

from __future__ import annotations

import itertools
import socket

import pytest

from handrail.ops import ports

pytestmark = pytest.mark.unit


def test_a_free_port_is_outside_the_ephemeral_range_bindable_and_never_given_twice():
    given = [ports.free_port() for _ in range(50)]
    assert len(set(given)) == 50
    assert all(ports.FLOOR <= p < ports._ephemeral_start() for p in given)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", given[-1]))


def _spare_ports():
    """Ports free at the moment they are asked for (a neighbour of the busy port may be taken too)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        yield port


def test_a_port_something_listens_on_is_never_given(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        picks = itertools.chain([busy, busy], _spare_ports())  # the busy one twice, then ones free now
        monkeypatch.setattr(ports.random, "choice", lambda _range: next(picks))
        monkeypatch.setattr(ports, "_ephemeral_start", lambda: 65_535)
        assert ports.free_port() != busy


def test_up_waits_a_moment_for_a_dead_components_port_but_not_for_a_foreign_one(monkeypatch):
    import threading

    from handrail.ops import stack

    monkeypatch.setattr(stack, "PORT_RELEASE_S", 1.5)
    listener = socket.create_server(("127.0.0.1", ports.free_port()))
    port = listener.getsockname()[1]
    threading.Timer(0.3, listener.close).start()  # released while `up` checks, as a dying process's is
    assert stack._port_free_soon("127.0.0.1", port)
    with socket.create_server(("127.0.0.1", port)):  # held for good: in use, after the grace
        assert not stack._port_free_soon("127.0.0.1", port)
