"""The tool clients' HTTP/1.1 keep-alive transport against a real socket server.

Each test scripts what a server says on the wire and checks what the client makes of it:
kept-alive reuse, bodies by length, chunks and close, a server that drops an idle
connection, timeouts, refused connections and cancels, all as httpx errors that
`handrail.tools.http` turns into honest retryable tool errors.
"""

from __future__ import annotations

import asyncio
import gzip
import json

import httpx
import pytest

from handrail.tools.errors import Unavailable
from handrail.tools.http import LabHTTP
from handrail.tools.keepalive import KeepAliveTransport

pytestmark = pytest.mark.unit


class Server:
    """A socket server that answers each request with `answer(method, path, body)`'s raw bytes.

    An answer of None closes the connection without a word; `connections` counts accepts."""

    def __init__(self, answer):
        self.answer = answer
        self.connections = 0
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> "Server":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        for writer in self.writers:
            writer.close()
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        nth = 0
        try:
            while True:
                nth += 1
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ")
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((method, path, headers, body))
                self.nth = nth  # which request this is on its connection
                raw = await self.answer(method, path, body) if asyncio.iscoroutinefunction(self.answer) \
                    else self.answer(method, path, body)
                if raw is None:
                    writer.close()
                    return
                writer.write(raw)
                await writer.drain()
                if b"connection: close" in raw.lower():
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def ok(body: bytes = b'{"ok": true}', extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            .encode() + body)


def client(server: Server, **kwargs) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, transport=KeepAliveTransport(), trust_env=False, **kwargs)


async def test_requests_in_turn_share_one_connection_and_bodies_arrive_whole():
    async with Server(lambda m, p, b: ok(json.dumps({"echo": b.decode(), "path": p}).encode())) as server:
        async with client(server) as http:
            for i in range(5):
                resp = await http.post(f"/firewall/egress/{i}", json={"value": f"203.0.113.{i}"})
                assert resp.status_code == 200
                assert resp.json() == {"echo": json.dumps({"value": f"203.0.113.{i}"}, separators=(",", ":")),
                                       "path": f"/firewall/egress/{i}"}
        assert server.connections == 1
        assert all(r[2]["content-length"] == str(len(r[3])) for r in server.requests)


async def test_concurrent_requests_open_connections_and_keep_them_for_later():
    async def slow(method, path, body):
        await asyncio.sleep(0.05)
        return ok()

    async with Server(slow) as server:
        async with client(server) as http:
            await asyncio.gather(*(http.get("/x") for _ in range(8)))
            opened = server.connections
            await asyncio.gather(*(http.get("/x") for _ in range(8)))
        assert opened == 8 and server.connections == 8


async def test_chunked_gzip_and_close_delimited_bodies():
    payload = json.dumps({"entries": list(range(500))}).encode()
    zipped = gzip.compress(payload)
    pieces = [zipped[i:i + 300] for i in range(0, len(zipped), 300)]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)

    def answer(method, path, body):
        if path == "/chunked":
            return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
                    + chunked + b"0\r\nX-Trailer: yes\r\n\r\n")
        if path == "/empty":
            return b"HTTP/1.1 204 No Content\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + payload  # length: until the server closes

    async with Server(answer) as server:
        async with client(server) as http:
            assert (await http.get("/chunked")).json() == {"entries": list(range(500))}
            assert (await http.get("/empty")).content == b""
            assert (await http.get("/until-close")).json() == {"entries": list(range(500))}
            assert (await http.get("/chunked")).status_code == 200
        assert server.connections == 2  # the close-delimited answer ended the first connection


async def test_a_connection_the_server_dropped_while_idle_is_not_reused():
    async with Server(lambda m, p, b: ok()) as server:
        async with client(server) as http:
            assert (await http.get("/a")).status_code == 200
            for writer in server.writers:
                writer.close()  # the server's idle timeout
            await asyncio.sleep(0.05)
            assert (await http.post("/b", json={})).status_code == 200
        assert server.connections == 2


async def test_a_reused_connection_closed_unanswered_is_retried_only_when_safe():
    """The server answers the first request on each connection and drops the second unanswered
    (the race of a server's idle timeout): a read or a keyed write goes again on a new
    connection, an unkeyed write is never sent twice."""
    servers: list[Server] = []

    async with Server(lambda m, p, b: ok() if servers[0].nth == 1 else None) as server:
        servers.append(server)
        async with client(server) as http:
            await http.get("/first")
            assert (await http.get("/read")).status_code == 200
            assert server.connections == 2
            with pytest.raises(httpx.RemoteProtocolError):
                await http.post("/write", json={"a": 1})
            assert server.connections == 2
            await http.get("/again")
            keyed = await http.post("/write", json={"a": 1}, headers={"Idempotency-Key": "k1"})
            assert keyed.status_code == 200 and server.connections == 4


async def test_errors_are_httpx_errors_that_the_tool_clients_call_retryable():
    async def never(method, path, body):
        await asyncio.sleep(1)
        return ok()

    async with Server(never) as server:
        http = LabHTTP(client(server, timeout=httpx.Timeout(0.2)))
        with pytest.raises(Unavailable) as timed_out:
            await http.json("GET", "/slow")
        assert timed_out.value.retryable and timed_out.value.code == "timeout"
        await http.client.aclose()

    async with Server(lambda m, p, b: ok()) as server:
        port = server.port
    refused = LabHTTP(httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", transport=KeepAliveTransport()))
    with pytest.raises(Unavailable) as unreachable:
        await refused.json("GET", "/x")
    assert unreachable.value.retryable and unreachable.value.code == "unreachable"
    await refused.client.aclose()

    async with Server(lambda m, p, b: b"SMTP ready\r\n\r\n") as server:
        async with client(server) as http:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.get("/x")
    async with Server(lambda m, p, b: b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * 300_000 + b"\r\n\r\n") as server:
        async with client(server) as http:
            with pytest.raises(httpx.ReadError):
                await http.get("/x")


async def test_a_cancelled_request_never_leaves_its_connection_for_the_next_one():
    release = asyncio.Event()

    async def answer(method, path, body):
        if path == "/slow":
            await release.wait()
            return ok(b'{"late": true}')
        return ok(b'{"fresh": true}')

    async with Server(answer) as server:
        async with client(server) as http:
            task = asyncio.ensure_future(http.get("/slow"))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            release.set()
            assert (await http.get("/fresh")).json() == {"fresh": True}  # not the late answer to /slow
        assert server.connections == 2


async def test_a_header_with_a_line_break_is_refused_before_it_is_sent():
    async with Server(lambda m, p, b: ok()) as server:
        async with client(server) as http:
            with pytest.raises((httpx.LocalProtocolError, ValueError)):
                await http.get("/x", headers={"X-Note": "a\r\nInjected: yes"})
        assert not server.requests


def _self_signed(tmp_path):
    """A certificate for 127.0.0.1 and its key, written as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


async def test_https_verifies_the_tool_and_keeps_its_connection(tmp_path):
    import ssl

    cert_file, key_file = _self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert_file, key_file)
    served = Server(lambda m, p, b: ok())
    served.server = await asyncio.start_server(served._serve, "127.0.0.1", 0, ssl=server_tls)
    served.port = served.server.sockets[0].getsockname()[1]
    url = f"https://127.0.0.1:{served.port}"
    try:
        trusting = httpx.AsyncClient(base_url=url, transport=KeepAliveTransport(
            ssl.create_default_context(cafile=str(cert_file))))
        async with trusting:
            assert (await trusting.get("/a")).json() == {"ok": True}
            assert (await trusting.get("/b")).status_code == 200
        assert served.connections == 1
        async with httpx.AsyncClient(base_url=url, transport=KeepAliveTransport()) as default_trust:
            with pytest.raises(httpx.ConnectError):  # a certificate nobody vouches for is refused
                await default_trust.get("/a")
    finally:
        await served.__aexit__(None, None, None)
