"""The modules the sandbox passes through are state-free and closed (see handrail/ops/sandbox.py).

A passed-through module is shared by every run the worker hosts, so module-level mutable
state in one would leak between runs (and differ between a first run and a replay).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import importlib
import inspect
import ipaddress
import json
import re
import subprocess
import sys

import pytest

from handrail.ops.sandbox import DOCUMENTED_CONSTANTS, PASSTHROUGH_MODULES

pytestmark = pytest.mark.unit

PROJECT = ("handrail", "workflows", "activities", "lab", "starter")
IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), range, re.Pattern, enum.Enum, frozenset,
             datetime.datetime, datetime.date, datetime.timedelta, datetime.timezone, decimal.Decimal,
             ipaddress.IPv4Network, ipaddress.IPv6Network, ipaddress.IPv4Address, ipaddress.IPv6Address)


def immutable(value) -> bool:
    """True for values a run cannot change: scalars, tuples of them, classes, functions, modules."""
    if isinstance(value, IMMUTABLE):
        return True
    if isinstance(value, tuple):
        return all(immutable(v) for v in value)
    if inspect.ismodule(value) or inspect.isclass(value) or inspect.isroutine(value):
        return True
    if type(value).__module__ in ("typing", "typing_extensions", "types", "__future__"):
        return True  # type hints and __future__ features
    if dataclasses.is_dataclass(value) and value.__dataclass_params__.frozen:
        return all(immutable(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


def constant_table(value) -> bool:
    """A documented constant: a container whose members are all immutable."""
    if isinstance(value, dict):
        return all(immutable(k) and (immutable(v) or constant_table(v)) for k, v in value.items())
    if isinstance(value, (list, set)):
        return all(immutable(v) for v in value)
    if dataclasses.is_dataclass(value) and not inspect.isclass(value):  # e.g. a RetryPolicy in activity options
        return all(immutable(getattr(value, f.name)) for f in dataclasses.fields(value))
    return immutable(value)


def stateful_globals(name: str) -> list[str]:
    module = importlib.import_module(name)
    found = []
    for key, value in vars(module).items():
        if key.startswith("__") and key.endswith("__"):
            continue
        qualified = f"{name}.{key}"
        if qualified in DOCUMENTED_CONSTANTS:
            if not constant_table(value):
                found.append(f"{qualified} (documented constant holding mutable members)")
            continue
        if not immutable(value):
            found.append(f"{qualified} ({type(value).__name__})")
        elif inspect.isclass(value) and value.__module__ == name:
            for attr, member in vars(value).items():
                if attr.startswith("_") or attr == "model_config" or inspect.isroutine(member):
                    continue
                if isinstance(member, (staticmethod, classmethod, property)) or inspect.isdatadescriptor(member):
                    continue
                if not immutable(member):
                    found.append(f"{qualified}.{attr} (class attribute {type(member).__name__})")
    return found


@pytest.mark.parametrize("name", PASSTHROUGH_MODULES)
def test_passed_through_modules_hold_no_mutable_state(name):
    assert stateful_globals(name) == []


def test_documented_constants_exist():
    for qualified in DOCUMENTED_CONSTANTS:
        module, _, attr = qualified.rpartition(".")
        assert module in PASSTHROUGH_MODULES and hasattr(importlib.import_module(module), attr), qualified


def test_the_detector_finds_state():
    """The check above is only worth something if it flags the usual kinds of state."""
    import types

    fake = types.ModuleType("fake_state")
    fake.CACHE = {}
    fake.seen = []
    fake.client = object()

    class Registry:
        entries: list = []

    fake.Registry = Registry
    Registry.__module__ = "fake_state"
    sys.modules["fake_state"] = fake
    try:
        found = stateful_globals("fake_state")
    finally:
        del sys.modules["fake_state"]
    assert found == ["fake_state.CACHE (dict)", "fake_state.seen (list)", "fake_state.client (object)",
                     "fake_state.Registry.entries (class attribute list)"]


def _fresh_imports(modules: list[str], after: str = "") -> dict[str, list[str]]:
    """For each module, the project modules a fresh interpreter loads to import it (once `after` is)."""
    script = (
        "import json, sys\n"
        + (f"import {after}\n" if after else "")
        +
        f"out = {{}}\nproject = {PROJECT!r}\n"
        f"for name in {modules!r}:\n"
        "    before = set(sys.modules)\n"
        "    __import__(name)\n"
        "    out[name] = sorted(n for n in set(sys.modules) - before if n.split('.')[0] in project)\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _empty_package(name: str) -> bool:
    """A package whose __init__ defines nothing: cheap for the sandbox to import per run."""
    module = importlib.import_module(name)
    own = [k for k, v in vars(module).items()
           if not k.startswith("__") and not (inspect.ismodule(v) and v.__name__ == f"{name}.{k}")]
    return hasattr(module, "__path__") and own == []


def test_the_passthrough_list_is_closed():
    """Whatever a passed-through module imports from the project is passed through too
    (packages on the way excepted, if empty). Activity modules are not counted: workflows
    import them only to name activities, and their code never runs inside a workflow."""
    loaded = _fresh_imports(list(PASSTHROUGH_MODULES), after="activities.registry")  # every activity module
    missing = {
        name: [m for m in mods if m not in PASSTHROUGH_MODULES and not _empty_package(m)]
        for name, mods in loaded.items()
    }
    assert {k: v for k, v in missing.items() if v} == {}


def test_each_workflow_module_imports_only_what_it_needs():
    """No runbook's module drags in another runbook's (the old package __init__ did, per run)."""
    from worker import WORKFLOWS

    modules = sorted({w.__module__ for w in WORKFLOWS})
    loaded = _fresh_imports(modules)
    for name in modules:
        others = [m for m in loaded[name] if m.startswith("workflows.") and m != name
                  and m not in PASSTHROUGH_MODULES]
        assert others == [], f"{name} imports {others}"
    assert _empty_package("workflows")


NONDETERMINISTIC_CALLS = {
    ("datetime", "now"), ("datetime", "utcnow"), ("date", "today"), ("time", "time"), ("time", "monotonic"),
    ("time", "perf_counter"), ("uuid", "uuid1"), ("uuid", "uuid4"), ("os", "environ"), ("os", "getenv"),
}
NONDETERMINISTIC_MODULES = {"random", "secrets", "time", "socket", "threading", "subprocess", "sqlite3", "httpx"}


@pytest.mark.parametrize("name", PASSTHROUGH_MODULES)
def test_passed_through_modules_use_no_clock_randomness_or_io(name):
    """The sandbox no longer guards a passed-through module at run time, so check its source:
    time and ids come from `workflow.now()` / `workflow.uuid4()`, never from the host."""
    import ast

    tree = ast.parse(inspect.getsource(importlib.import_module(name)))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in NONDETERMINISTIC_CALLS:
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"line {node.lineno}: import {n}" for n in names if n.split(".")[0] in NONDETERMINISTIC_MODULES]
    assert found == []
