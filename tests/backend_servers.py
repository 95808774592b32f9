"""Real server software for the backend tests, each started by the test on loopback with its
own config in a tmp dir: Unbound, Dovecot, rsyslog, and an nftables network namespace.

Nothing here enables a system service or reads or changes the host's configuration. A
missing binary skips the test naming the Debian package to install, except under
CI=true, where it fails (CI installs them in .ci/run).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from handrail.ops.ports import free_port


def require(binary: str, package: str) -> str:
    path = shutil.which(binary) or next((p for p in (f"/usr/sbin/{binary}", f"/sbin/{binary}")
                                         if os.access(p, os.X_OK)), None)
    if path is None:
        message = f"{binary} is missing: install the Debian package {package} (apt-get install -y {package})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{what} needs root")
        pytest.skip(f"{what} needs root")


def wait_port(port: int, proc: subprocess.Popen, what: str, log: Path | None = None, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            detail = log.read_text()[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}: {detail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to a server started with start_new_session and every process it started, at once.

    Dovecot's master, sent SIGTERM alone, signals its children and waits for them (about a
    second a server; longer when nothing ever connected); the whole group ends in milliseconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# -- Unbound with an RPZ zone --------------------------------------------------------------
@contextmanager
def unbound(tmp: Path, local_data: tuple[str, ...] = ()) -> Iterator[dict]:
    """Unbound on a loopback UDP/TCP port, answering from local zones and an RPZ zone file.

    `example.` and `test.` are authoritative zones of its own (`local_data` are their records),
    so nothing is ever asked of the internet. They are auth zones rather than local zones
    because Unbound answers local zones before it applies RPZ, as a deployment's would not.
    """
    binary = require("unbound", "unbound")
    control = require("unbound-control", "unbound")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    zone = tmp / "rpz.handrail.zone"
    zone.write_text("$ORIGIN rpz.handrail.\n$TTL 60\n@ SOA localhost. hostmaster.localhost. 1 3600 600 86400 60\n"
                    "@ NS localhost.\n")
    conf = tmp / "unbound.conf"
    sock = tmp / "control.sock"
    zones = ""
    for origin in ("example.", "test."):
        records = "\n".join(d for d in local_data if d.split()[0].endswith("." + origin))
        path = tmp / f"{origin}zone"
        path.write_text(f"$ORIGIN {origin}\n$TTL 60\n@ SOA localhost. hostmaster.localhost. 1 3600 600 86400 60\n"
                        f"@ NS localhost.\n{records}\n")
        zones += (f'auth-zone:\n  name: "{origin}"\n  zonefile: "{path}"\n  for-upstream: yes\n'
                  f"  for-downstream: no\n  fallback-enabled: no\n")
    conf.write_text(f"""server:
  interface: 127.0.0.1
  port: {port}
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{tmp}"
  pidfile: "{tmp}/unbound.pid"
  logfile: "{tmp}/unbound.log"
  use-syslog: no
  verbosity: 1
  module-config: "respip iterator"
  access-control: 127.0.0.0/8 allow
  do-ip6: no
remote-control:
  control-enable: yes
  control-interface: "{sock}"
rpz:
  name: rpz.handrail.
  zonefile: "{zone}"
{zones}""")
    proc = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, "unbound", tmp / "unbound.log")
        yield {"port": port, "zone_file": zone, "reload": [control, "-c", str(conf), "auth_zone_reload", "{zone}"],
               "flush": [control, "-c", str(conf), "flush_zone", "{domain}"], "conf": conf}
    finally:
        stop(proc)


# -- nftables inside a network namespace of the test's own --------------------------------
@contextmanager
def netns() -> Iterator[str]:
    require_root("an nftables network namespace")
    ip = require("ip", "iproute2")
    require("nft", "nftables")
    name = f"hr-{uuid.uuid4().hex[:8]}"
    subprocess.run([ip, "netns", "add", name], check=True)
    try:
        subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run([ip, "netns", "del", name], check=False)


def tcp_verdict(ns: str, address: str, port: int = 9) -> str:
    """From inside `ns`: 'refused' when the SYN left (nothing listens), 'dropped' when nftables ate it (no answer)."""
    family = "AF_INET6" if ":" in address else "AF_INET"
    code = (f"import socket,errno\ns=socket.socket(socket.{family});s.settimeout(0.5)\n"
            f"try:\n s.connect(({address!r},{port}))\n print('open')\n"
            "except TimeoutError:\n print('dropped')\n"
            "except OSError as e:\n"
            " print({errno.ECONNREFUSED:'refused',errno.EPERM:'dropped'}.get(e.errno,'other:'+str(e.errno)))")
    import sys

    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


# -- Dovecot IMAP with a passwd-file user and a maildir of its own -------------------------
def self_signed_cert(tmp: Path) -> tuple[Path, Path]:
    openssl = require("openssl", "openssl")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@contextmanager
def dovecot(tmp: Path, user: str = "soc", password: str = "s3cret-imap", passdb: str | None = None) -> Iterator[dict]:
    """Dovecot serving IMAP (STARTTLS-capable) and IMAPS on two loopback ports, as root, for one user
    (`passdb`: the body of a passdb block other than the passwd-file one)."""
    binary = require("dovecot", "dovecot-imapd")
    if not Path("/usr/lib/dovecot/imap").exists():
        require("imap-dovecot-binary", "dovecot-imapd")
    require_root("Dovecot started by the test")
    tmp.mkdir(parents=True, exist_ok=True)
    tmp.chmod(0o755)
    cert, key = self_signed_cert(tmp)
    imap_port, imaps_port = free_port(), free_port()
    (tmp / "passwd").write_text(f"{user}:{{PLAIN}}{password}\n")
    # Dovecot never stores mail as root: the maildir belongs to `nobody`, under a directory of
    # its own in /tmp that nobody can traverse (pytest's tmp dirs are private to root).
    import pwd
    import tempfile

    nobody = pwd.getpwnam("nobody")
    mail_root = Path(tempfile.mkdtemp(prefix="handrail-dovecot-"))
    mail_root.chmod(0o711)
    os.chown(mail_root, nobody.pw_uid, nobody.pw_gid)
    conf = tmp / "dovecot.conf"
    conf.write_text(f"""protocols = imap
listen = 127.0.0.1
base_dir = {tmp}/run
state_dir = {tmp}/state
instance_name = handrail-test-{imap_port}
log_path = {tmp}/dovecot.log
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:{mail_root}/%u
passdb {{
  {passdb or f"driver = passwd-file{chr(10)}  args = scheme=PLAIN username_format=%u {tmp}/passwd"}
}}
userdb {{
  driver = static
  args = uid={nobody.pw_uid} gid={nobody.pw_gid} home={mail_root}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  chroot =
}}
service auth {{
  user = root
}}
service auth-worker {{
  user = root
}}
""")
    proc = subprocess.Popen([binary, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)  # a group of its own: stop_group ends it and its children
    try:
        wait_port(imap_port, proc, "dovecot", tmp / "dovecot.log")
        wait_port(imaps_port, proc, "dovecot", tmp / "dovecot.log")
        yield {"imap_port": imap_port, "imaps_port": imaps_port, "user": user, "password": password,
               "ca_file": cert, "log": tmp / "dovecot.log"}
    finally:
        stop_group(proc)
        shutil.rmtree(mail_root, ignore_errors=True)


# -- rsyslog receiving RFC 5424 over TCP into a file -----------------------------------------
@contextmanager
def rsyslog(tmp: Path, tls: bool = False) -> Iterator[dict]:
    """rsyslogd in the foreground with only imtcp loaded (TLS through the ossl driver when `tls`);
    each received message becomes one line `pri|app-name|msgid|structured-data|msg` (parsed by
    rsyslog's RFC 5424 parser) in a file."""
    binary = require("rsyslogd", "rsyslog")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    out = tmp / "received.log"
    conf = tmp / "rsyslog.conf"
    if tls:
        if not list(Path("/usr/lib").glob("*/rsyslog/lmnsd_ossl.so")):
            require("rsyslog-ossl-driver", "rsyslog-openssl")
        cert, key = self_signed_cert(tmp)
        head = (f'global(workDirectory="{tmp}" DefaultNetstreamDriver="ossl" DefaultNetstreamDriverCAFile="{cert}"'
                f' DefaultNetstreamDriverCertFile="{cert}" DefaultNetstreamDriverKeyFile="{key}")\n'
                'module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")\n')
    else:
        cert = None
        head = f'global(workDirectory="{tmp}")\nmodule(load="imtcp")\n'
    conf.write_text(head + f"""input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="fields" type="string"
         string="%pri%|%app-name%|%msgid%|%structured-data%|%msg%\\n")
*.* action(type="omfile" file="{out}" template="fields")
""")
    proc = subprocess.Popen([binary, "-n", "-f", str(conf), "-i", str(tmp / "rsyslogd.pid")],
                            stdout=subprocess.DEVNULL, stderr=(tmp / "rsyslogd.err").open("w"))
    try:
        wait_port(port, proc, "rsyslogd", tmp / "rsyslogd.err")
        yield {"port": port, "file": out, "ca_file": cert}
    finally:
        stop(proc)


def read_lines(path: Path, count: int, timeout: float = 10.0) -> list[str]:
    """The file's lines once it has at least `count` of them (rsyslog writes asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def write_tools_file(path: Path, tools: dict[str, dict]) -> Path:
    """A HANDRAIL_TOOLS file: one `[tools.<name>]` table per tool (JSON strings and lists are valid TOML)."""
    import json

    lines = []
    for name, table in tools.items():
        lines.append(f"[tools.{name}]")
        for key, value in table.items():
            value = str(value) if isinstance(value, Path) else value
            lines.append(f"{key} = {str(value).lower() if isinstance(value, bool) else json.dumps(value)}")
        lines.append("")
    path.write_text("\n".join(lines))
    return path


# -- medallion, a TAXII 2.1 server, with one empty writable collection ---------------------
@contextmanager
def medallion(tmp: Path, collections: tuple[str, ...] = ("phish-indicators",), page_size: int = 100,
              user: str = "reader", password: str = "taxii-pw") -> Iterator[dict]:
    import json
    import sys

    binary = str(Path(sys.executable).parent / "medallion")
    if not Path(binary).exists():
        binary = shutil.which("medallion")
        if binary is None:
            pytest.fail("medallion is missing: install the dev extras (pip install -e '.[dev]')")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    root = f"http://127.0.0.1:{port}/api1/"
    ids = {title: str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tmp}/{title}")) for title in collections}
    data = {"/discovery": {"title": "test", "default": root, "api_roots": [root]},
            "api1": {"information": {"title": "api1", "versions": ["application/taxii+json;version=2.1"],
                                     "max_content_length": 50_000_000},
                     "status": [],
                     "collections": [{"id": cid, "title": title, "can_read": True, "can_write": True,
                                      "media_types": ["application/stix+json;version=2.1"], "objects": [],
                                      "manifest": []} for title, cid in ids.items()]}}
    (tmp / "data.json").write_text(json.dumps(data))
    (tmp / "config.json").write_text(json.dumps({
        "backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend",
                    "filename": str(tmp / "data.json")},
        "users": {user: password}, "taxii": {"max_page_size": page_size}}))
    log = tmp / "medallion.log"
    proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", str(port), str(tmp / "config.json")],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, "medallion", log)
        yield {"api_root": root, "collections": ids, "user": user, "password": password, "port": port}
    finally:
        stop(proc)
