"""DNS sinkhole as a Response Policy Zone (RPZ): the DNS-firewall format BIND, Unbound,
PowerDNS and Infoblox all load.

A sinkhole of `evil.example` is two records in the zone, `evil.example` and
`*.evil.example`, both answering the awareness page's address, plus a TXT record at the
same name carrying when and why it was added (the zone is the only state: no side file).
Every change rewrites the whole zone with a new SOA serial into a temporary file beside
it and renames it over the old one (readers never see half a zone), then runs the
resolver's reload command. Changes are serialised by a lock file so two workers on one
host cannot lose each other's edits.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.zone

from handrail.ops.tools_config import RpzDns
from handrail.tools.dns import Resolution, Sinkhole
from handrail.tools.errors import Conflict, Invalid, NotFound, ToolError, Unavailable
from handrail.tools.journal import Journal, fingerprint
from handrail.tools.process import Completed, run_command

_META = "handrail"


def normalise_domain(domain: str) -> str:
    """Lower-case, IDNA-encoded, no trailing dot; at least two labels of letters, digits and hyphens."""
    text = (domain or "").strip().rstrip(".").lower()
    try:
        text = text.encode("idna").decode("ascii") if text and not text.isascii() else text
    except UnicodeError:
        raise Invalid(f"{domain!r} is not a domain name.", status=422) from None
    labels = text.split(".")
    ok = len(labels) >= 2 and len(text) <= 253 and all(
        0 < len(lb) <= 63 and lb[0] != "-" and lb[-1] != "-" and all(c.isalnum() or c in "-_" for c in lb)
        for lb in labels)
    if not ok:
        raise Invalid(f"{domain!r} is not a domain name.", status=422)
    return text


def clean_comment(comment: str) -> str:
    """What a zone file can hold verbatim in a TXT string: printable, one line, no quotes or backslashes,
    at most 200 characters and 255 bytes of UTF-8 (the longest string a TXT record holds)."""
    text = "".join(c if c.isprintable() else " " for c in str(comment or ""))
    text = " ".join(text.split()).replace("\\", "/").replace('"', "'")[:200]
    return text.encode()[:255].decode(errors="ignore")


def _txt(added_at: str, comment: str) -> str:
    return f'"{_META} added_at={added_at}" "{clean_comment(comment)}"'


class RpzZone:
    """The zone file: read into {domain: Sinkhole}, written back whole."""

    def __init__(self, cfg: RpzDns) -> None:
        self.cfg = cfg
        self.origin = dns.name.from_text(cfg.zone)
        self.path = Path(cfg.zone_file)

    def read(self) -> tuple[int, dict[str, Sinkhole]]:
        serial, entries, _ = self._read()
        return serial, entries

    def _read(self) -> tuple[int, dict[str, Sinkhole], list[str]]:
        """The serial, the sinkholes, and every other record of the zone as zone-file lines (the
        SOA apart): records Handrail did not write (an NS of the operator's, an NXDOMAIN policy
        `x CNAME .`) are written back unchanged, never dropped by a rewrite."""
        if not self.path.exists():
            return 0, {}, []
        try:
            with open(self.path, encoding="utf-8") as fh:
                zone = dns.zone.from_file(fh, origin=self.origin, relativize=True, check_origin=False)
        except (dns.exception.DNSException, OSError, UnicodeDecodeError) as exc:
            raise ToolError(f"The RPZ zone file {self.path} cannot be read: {exc}.", code="bad_zone") from None
        soa = zone.get_rdataset("@", dns.rdatatype.SOA)
        serial = soa[0].serial if soa else 0
        entries: dict[str, Sinkhole] = {}
        for name, node in zone.nodes.items():
            text = name.to_text()
            if text in ("@", "") or text.startswith("*."):
                continue
            a = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.A) or node.get_rdataset(
                dns.rdataclass.IN, dns.rdatatype.AAAA)
            if not a:
                continue
            added_at, comment = "", ""
            txt = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.TXT)
            for rd in txt or ():
                parts = [s.decode(errors="replace") for s in rd.strings]
                if parts and parts[0].startswith(f"{_META} added_at="):
                    added_at = parts[0].split("=", 1)[1]
                    comment = " ".join(parts[1:])
            entries[text.lower()] = Sinkhole(domain=text.lower(), address=a[0].address, comment=comment,
                                             added_at=added_at)
        kept: list[str] = []
        for name, node in zone.nodes.items():
            text = name.to_text().lower()
            if text in entries or (text.startswith("*.") and text[2:] in entries):
                continue
            for rdataset in node.rdatasets:
                if rdataset.rdtype != dns.rdatatype.SOA:
                    kept.append(rdataset.to_text(name))
        return serial, entries, kept

    def render(self, serial: int, entries: dict[str, Sinkhole], kept: list[str] | None = None) -> str:
        lines = [f"$ORIGIN {self.origin.to_text()}", "$TTL 60",
                 f"@ SOA localhost. hostmaster.localhost. {serial} 3600 600 86400 60"]
        kept = list(kept or ())
        if not any(line.split()[0] == "@" and " NS " in f" {line} " for line in kept):
            lines.append("@ NS localhost.")
        lines += kept
        for domain in sorted(entries):
            e = entries[domain]
            rtype = "AAAA" if ":" in e.address else "A"
            lines += [f"{domain} {rtype} {e.address}", f"*.{domain} {rtype} {e.address}",
                      f"{domain} TXT {_txt(e.added_at, e.comment)}"]
        text = "\n".join(lines) + "\n"
        try:
            dns.zone.from_text(text, origin=self.origin, relativize=True, check_origin=False)  # never write a bad zone
        except dns.exception.DNSException as exc:
            raise ToolError(f"The RPZ zone {self.origin} would not be valid after this change: {exc}.",
                            code="bad_zone") from None
        return text

    def write(self, serial: int, entries: dict[str, Sinkhole], kept: list[str] | None = None) -> None:
        text = self.render(serial, entries, kept)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def update(self, change) -> tuple[Sinkhole | None, bool]:
        """Apply `change(entries) -> (result, changed)` under the lock file; write when changed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            serial, entries, kept = self._read()
            result, changed = change(entries)
            if changed:
                self.write((serial + 1) % 2**32 or 1, entries, kept)
            return result, changed


class RpzSinkhole:
    def __init__(self, cfg: RpzDns, journal: Journal) -> None:
        self.cfg = cfg
        self.zone = RpzZone(cfg)
        self.journal = journal
        self._lock = asyncio.Lock()

    def _name(self, domain: str) -> str:
        """The normalised domain, refused when its records (`*.<domain>` under the zone) would be
        longer than a DNS name may be."""
        name = normalise_domain(domain)
        try:
            dns.name.from_text(f"*.{name}", origin=self.zone.origin)
        except dns.exception.DNSException:
            raise Invalid(f"{name[:60]}... is too long to sinkhole under the zone {self.cfg.zone}.",
                          status=422) from None
        return name

    async def _reload(self, domain: str) -> None:
        zone = self.cfg.zone.rstrip(".")
        for template, what in ((self.cfg.reload_command, "reload"), (self.cfg.flush_command, "flush")):
            if not template:
                continue
            argv = [a.replace("{zone}", zone).replace("{domain}", domain) for a in template]
            done = await run_command(argv, timeout=self.cfg.timeout)
            if done.returncode == 0:
                continue
            answer = Completed(done.returncode, b"", done.stdout).error_line
            if not done.error_line and answer.lower().startswith("error"):
                # unbound-control prints the server's own refusal on stdout ("error no auth-zone x",
                # "error failed to read x"): the resolver answered, and a retry would be refused again
                raise ToolError(f"The resolver refused the {what} ({argv[0]}): {answer}.", code="reload_refused")
            why = done.error_line or answer or done.returncode
            raise Unavailable(f"The resolver {what} ({argv[0]}) failed: {why}.", code="reload_failed")

    async def list_sinkholes(self) -> list[Sinkhole]:
        _, entries = await asyncio.to_thread(self.zone.read)
        return [entries[d] for d in sorted(entries)]

    async def get_sinkhole(self, domain: str) -> Sinkhole | None:
        name = normalise_domain(domain)
        _, entries = await asyncio.to_thread(self.zone.read)
        return entries.get(name)

    async def sinkhole(self, domain: str, *, address: str | None = None, comment: str = "",
                       idempotency_key: str | None = None) -> Sinkhole:
        name = self._name(domain)
        try:
            if address and "%" in str(address):  # a scoped IPv6 address is no record's data
                raise ValueError(address)
            addr = str(ipaddress.ip_address(address)) if address else self.cfg.awareness_address
        except ValueError:
            raise Invalid(f"{address!r} is not an IP address.", status=422) from None

        async def act(resume: bool) -> Sinkhole:
            def change(entries):
                if name in entries:
                    if resume and entries[name].address == addr:
                        return entries[name], False
                    raise Conflict(f"{name} is already sinkholed.", status=409)
                entries[name] = Sinkhole(domain=name, address=addr, comment=clean_comment(comment),
                                         added_at=datetime.now(UTC).isoformat(timespec="seconds"))
                return entries[name], True

            async with self._lock:
                entry, _ = await asyncio.to_thread(self.zone.update, change)
                await self._reload(name)
            return entry

        return await self.journal.run("dns", idempotency_key, fingerprint("sinkhole", name, addr, comment), act,
                                      dump=lambda s: s.model_dump(), load=Sinkhole.model_validate)

    async def remove_sinkhole(self, domain: str, *, idempotency_key: str | None = None) -> None:
        name = self._name(domain)

        async def act(resume: bool) -> None:
            def change(entries):
                if name not in entries:
                    if resume:
                        return None, False
                    raise NotFound(f"{name} is not sinkholed.", status=404)
                del entries[name]
                return None, True

            async with self._lock:
                await asyncio.to_thread(self.zone.update, change)
                await self._reload(name)

        await self.journal.run("dns", idempotency_key, fingerprint("unsinkhole", name), act)

    async def resolve(self, name: str) -> Resolution:
        """What the configured resolver answers for `name` (A and AAAA), and which sinkhole covers it."""
        qname = normalise_domain(name)
        _, entries = await asyncio.to_thread(self.zone.read)
        labels = qname.split(".")
        covering = next((".".join(labels[i:]) for i in range(len(labels) - 1) if ".".join(labels[i:]) in entries),
                        None)
        if not self.cfg.resolver:
            addresses = [entries[covering].address] if covering else []
            return Resolution(name=qname, addresses=addresses, sinkholed=covering is not None, sinkhole=covering)
        host, _, port = self.cfg.resolver.rpartition(":")
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host.strip("[]") or "127.0.0.1"]
        resolver.port = int(port or 53)
        resolver.lifetime = self.cfg.timeout
        resolver.cache = None
        addresses: list[str] = []
        for rtype in ("A", "AAAA"):
            try:
                answer = await resolver.resolve(qname, rtype, raise_on_no_answer=False)
            except dns.resolver.NXDOMAIN:
                break
            except (dns.resolver.LifetimeTimeout, dns.resolver.NoNameservers) as exc:
                raise Unavailable(f"The resolver {self.cfg.resolver} did not answer for {qname}: {exc}.",
                                  code="unreachable") from None
            addresses += [rd.address for rd in answer.rrset or ()]
        return Resolution(name=qname, addresses=addresses, sinkholed=covering is not None, sinkhole=covering)
