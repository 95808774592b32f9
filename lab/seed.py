"""The seeded estate: a deterministic mid-size enterprise, the same on every start/reset.

`build_world()` invents people, machines and networks with `random.Random(SEED)`; each
tool module turns the world into its own documents (`seed(world) -> {collection: {key:
doc}}`). The mailbox is filled with Handrail's own sample mail (lab/samples) and, when
present, the raw phishing fixtures (bytes only: nothing in them is ever fetched, resolved
or opened).
"""

from __future__ import annotations

import ipaddress
import os
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

SEED = 20250303

FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
         "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
         "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark", "Helen", "Donald", "Sandra", "Steven",
         "Ashley", "Paul", "Kimberly", "Andrew", "Emily", "Joshua", "Donna", "Kenneth", "Michelle", "Kevin", "Carol",
         "Brian", "Amanda", "George", "Melissa", "Timothy", "Deborah", "Ronald", "Stephanie", "Jason", "Rebecca",
         "Edward", "Sharon", "Jeffrey", "Laura", "Ryan", "Cynthia", "Jacob", "Amy", "Gary", "Kathleen", "Nicholas",
         "Angela", "Eric", "Shirley", "Jonathan", "Anna", "Stephen", "Brenda", "Larry", "Pamela", "Justin", "Emma",
         "Scott", "Nicole", "Brandon", "Samantha", "Benjamin", "Katherine", "Samuel", "Christine", "Gregory", "Rachel",
         "Alexander", "Janet"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
        "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
        "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker",
        "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson",
        "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner",
        "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales", "Murphy", "Cook"]
DEPARTMENTS = ("Finance", "Engineering", "Sales", "HR", "Legal", "IT", "Marketing", "Operations")

NETWORKS = {
    "corp-wifi": "10.10.0.0/16",
    "corp-wired": "10.11.0.0/16",
    "datacenter": "10.20.0.0/16",
    "prod-db": "10.30.0.0/24",
    "mobile": "10.40.0.0/16",
    "guest-wifi": "172.16.0.0/16",
}
SINKHOLE_ADDRESS = "10.20.0.80"  # the awareness page behind sinkholed domains

# Indicators planted in EDR telemetry: the compromised hosts share them.
PLANTED = {
    "c2_ip": "185.243.115.84",
    "c2_domain": "cdn-telemetry-sync.net",
    "malware_sha256": "9f2b5c1e7a3d4f6b8c0e2a4d6f8b1c3e5a7d9f0b2c4e6a8d0f1b3c5e7a9d2f4b",
    "dropper_url": "http://cdn-telemetry-sync.net/upd/agent.bin",
}
BENIGN = (
    "login.microsoftonline.com", "outlook.office365.com", "github.com", "slack.com",
    "zoom.us", "www.google.com", "update.googleapis.com", "dl.delivery.mp.microsoft.com",
)


@dataclass
class Person:
    username: str
    display_name: str
    email: str
    department: str
    title: str
    manager: str | None
    groups: list[str] = field(default_factory=list)


@dataclass
class Machine:
    hostname: str
    type: str  # laptop | desktop | server | database | phone | access_point | printer
    os: str
    vendor: str
    model: str
    owner: str | None
    network: str
    ip: str
    mac: str
    tags: list[str] = field(default_factory=list)
    role: str | None = None


@dataclass
class Mail:
    file: str
    raw: bytes


@dataclass
class World:
    rng_seed: int
    people: list[Person]
    machines: list[Machine]
    groups: dict[str, dict[str, Any]]
    compromised: list[str]
    visitors: dict[str, list[str]]  # phishing-domain visitors: domain -> hostnames
    phishing_domains: list[str]
    mails: list[Mail]

    def person(self, username: str) -> Person:
        return next(p for p in self.people if p.username == username)

def fixtures_dir() -> Path:
    env = os.environ.get("HANDRAIL_FIXTURES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "real"


def _mac(rng: random.Random, oui: str) -> str:
    return oui + ":" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))


OUIS = {
    "Dell": "f8:bc:12", "Lenovo": "54:ee:75", "Apple": "a4:83:e7", "HP": "3c:52:82",
    "Samsung": "8c:f5:a3", "Cisco": "00:1b:54", "Aruba": "24:de:c6", "TP-Link": "50:c7:bf",
    "Raspberry Pi": "b8:27:eb",
}

# Link hosts of a few fixture mails (read offline once, by hand), which some laptops "visited":
# proliferation searches for them find hosts. Planted only if that fixture is present.
PHISH_LINK_HOSTS = {
    "sample-4588.eml": "rastreiofiscaliza.com",
    "sample-5193.eml": "juliodedansk.icu",
    "sample-4734.eml": "boxaw.buscaeuhgwcep.biz.ua",
}


def _phishing_domains(mails: list[Mail]) -> list[str]:
    present = {m.file for m in mails}
    return [d for f, d in PHISH_LINK_HOSTS.items() if f in present]


SAMPLES_DIR = Path(__file__).resolve().parent / "samples"  # Handrail's own synthetic mail


def own_samples() -> list[Mail]:
    """The project's own sample messages (lab/samples): always there, even without ../shared."""
    return [Mail(p.name, p.read_bytes()) for p in sorted(SAMPLES_DIR.glob("*.eml"))]


def load_mails(folder: Path | None = None) -> list[Mail]:
    """The mailbox's messages: our own samples first, then the real corpus when present."""
    base = (folder or fixtures_dir()) / "phishing"
    real = [Mail(p.name, p.read_bytes()) for p in sorted(base.glob("*.eml"))] if base.is_dir() else []
    return own_samples() + real


@lru_cache(maxsize=4)
def _build_world(fixtures: str) -> World:
    rng = random.Random(SEED)
    people: list[Person] = []
    taken: set[str] = set()

    def add_person(username: str, first: str, last: str, dept: str, title: str,
                   manager: str | None, groups: list[str]) -> Person:
        taken.add(username)
        p = Person(username, f"{first} {last}", f"{username}@corp.example", dept, title,
                   manager, sorted(set(groups + ["all-staff"])))
        people.append(p)
        return p

    add_person("mthompson", "Margaret", "Thompson", "Executive", "Chief Executive Officer",
               None, ["executives", "vpn-users"])
    add_person("rchen", "Richard", "Chen", "Finance", "Chief Financial Officer", "mthompson",
               ["executives", "finance", "finance-admins", "vpn-users"])
    add_person("jalvarez", "Julia", "Alvarez", "IT", "Chief Information Officer", "mthompson",
               ["executives", "it", "vpn-users"])
    add_person("kowens", "Kate", "Owens", "Legal", "General Counsel", "mthompson",
               ["executives", "legal", "vpn-users"])
    for name, first, last in (("alice", "Alice", "Nakamura"), ("bob", "Bob", "Okafor"),
                              ("carol", "Carol", "Lindqvist"), ("dave", "Dave", "Moreau")):
        add_person(name, first, last, "Security", "SOC Analyst", "jalvarez",
                   ["soc-analysts", "it", "vpn-users"])
    add_person("svc-backup", "Backup", "Service", "IT", "Service account", None,
               ["backup-operators"])
    add_person("svc-deploy", "Deploy", "Service", "IT", "Service account", None, ["it"])
    heads = {}
    while len(people) < 150:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        username = (first[0] + last).lower()
        n = 2
        while username in taken:
            username = f"{(first[0] + last).lower()}{n}"
            n += 1
        dept = DEPARTMENTS[len(people) % len(DEPARTMENTS)]
        if dept not in heads:
            heads[dept] = username
            title, manager = f"Head of {dept}", "mthompson"
        else:
            title = rng.choice(("Analyst", "Specialist", "Engineer", "Manager", "Associate"))
            manager = heads[dept]
        groups = [dept.lower(), "vpn-users"] if rng.random() < 0.7 else [dept.lower()]
        if dept == "IT" and rng.random() < 0.3:
            groups.append("server-admins")
        if dept == "IT" and len([p for p in people if "domain-admins" in p.groups]) < 3:
            groups.append("domain-admins")
        if dept == "Finance" and rng.random() < 0.15:
            groups.append("finance-admins")
        if dept == "IT" and rng.random() < 0.4:
            groups.append("helpdesk")
        add_person(username, first, last, dept, title, manager, groups)

    machines: list[Machine] = []
    counters = {k: 10 for k in NETWORKS}

    def next_ip(net: str) -> str:
        counters[net] += 1
        base = ipaddress.ip_network(NETWORKS[net]).network_address
        return str(base + counters[net])

    def add(hostname, kind, os_, vendor, model, owner, net, tags=(), role=None):
        m = Machine(hostname, kind, os_, vendor, model, owner, net, next_ip(net),
                    _mac(rng, OUIS[vendor]), sorted(tags), role)
        machines.append(m)
        return m

    # servers: domain controllers, file/app/web, the awareness page, production DB tier
    add("dc01", "server", "Windows Server 2022", "Dell", "PowerEdge R650", "jalvarez",
        "datacenter", ["production", "tier0"], "domain-controller")
    add("dc02", "server", "Windows Server 2022", "Dell", "PowerEdge R650", "jalvarez",
        "datacenter", ["production", "tier0"], "domain-controller")
    counters["datacenter"] = 79
    add("web-awareness-01", "server", "Ubuntu 22.04", "Dell", "PowerEdge R450", "jalvarez",
        "datacenter", ["internal"], "awareness-page")
    for i in range(1, 7):
        add(f"db-prod-{i:02d}", "database", "RHEL 9", "HP", "ProLiant DL380", "jalvarez",
            "prod-db", ["production", "pci", "database-tier"], "postgresql")
    it_people = [p.username for p in people
                 if p.department == "IT" and not p.username.startswith("svc-")]
    roles = ("app", "web", "file", "build", "mq", "cache", "log", "backup")
    for i in range(52):
        role = roles[i % len(roles)]
        tags = ["production"] if role in ("app", "web", "mq") and i % 3 else ["staging"]
        add(f"srv-{role}-{i + 1:02d}", "server", rng.choice(("Ubuntu 22.04", "RHEL 9",
            "Windows Server 2019")), rng.choice(("Dell", "HP")), "rack server",
            rng.choice(it_people), "datacenter", tags, role)
    # executive phones
    for user, role in (("mthompson", "ceo"), ("rchen", "cfo"), ("jalvarez", "cio"),
                       ("kowens", "general-counsel")):
        add(f"ph-{user}", "phone", "iOS 17", "Apple", "iPhone 15 Pro", user, "mobile",
            ["executive", "mobile"], f"{role}-phone")
    for user in ("alice", "bob"):
        add(f"ph-{user}", "phone", "Android 14", "Samsung", "Galaxy S23", user, "mobile",
            ["mobile"])
    # laptops for everyone human, desktops for some
    humans = [p for p in people if not p.username.startswith("svc-")]
    for _i, p in enumerate(humans):
        vendor = rng.choice(("Dell", "Lenovo", "Apple"))
        os_ = "macOS 14" if vendor == "Apple" else "Windows 11"
        tags = ["executive"] if p.department == "Executive" else []
        add(f"lt-{p.username}", "laptop", os_, vendor, "laptop", p.username, "corp-wifi", tags)
    while len(machines) < 296:
        p = rng.choice(humans)
        add(f"ws-{len(machines):04d}", "desktop", "Windows 11", rng.choice(("Dell", "HP")),
            "desktop", p.username, "corp-wired")
    add("ap-floor1-01", "access_point", "ArubaOS", "Aruba", "AP-515", "jalvarez", "corp-wired",
        ["network"])
    add("ap-floor2-01", "access_point", "ArubaOS", "Aruba", "AP-515", "jalvarez", "corp-wired",
        ["network"])
    add("sw-core-01", "switch", "IOS-XE", "Cisco", "Catalyst 9300", "jalvarez", "datacenter",
        ["network", "production"])
    add("prn-floor1-01", "printer", "firmware", "HP", "LaserJet", "jalvarez", "corp-wired")

    laptops = [m for m in machines if m.type == "laptop"]
    compromised = sorted(m.hostname for m in rng.sample(laptops, 3)) + ["srv-app-01"]
    mails = load_mails(Path(fixtures))
    phish = _phishing_domains(mails)
    visitors: dict[str, list[str]] = {}
    for domain in phish:
        visitors[domain] = sorted(m.hostname for m in rng.sample(laptops, 2))

    groups = {
        "all-staff": ("Everyone employed", False),
        "executives": ("Executive team", False),
        "vpn-users": ("May use the VPN", False),
        "soc-analysts": ("Security operations analysts", False),
        "helpdesk": ("IT helpdesk", False),
        "domain-admins": ("Active Directory domain administrators", True),
        "enterprise-admins": ("Active Directory forest administrators", True),
        "finance-admins": ("Administrators of the finance systems (ERP, payments)", True),
        "server-admins": ("Local administrators on all servers", True),
        "backup-operators": ("May read every file for backup", True),
        **{d.lower(): (f"{d} department", False) for d in DEPARTMENTS},
        "it": ("IT department", False),
        "legal": ("Legal department", False),
    }
    group_docs = {name: {"name": name, "description": desc, "privileged": priv}
                  for name, (desc, priv) in groups.items()}
    return World(SEED, people, machines, group_docs, compromised, visitors, phish, mails)


def build_world() -> World:
    return _build_world(str(fixtures_dir()))
