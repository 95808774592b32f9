"""A small YAML reader for the subset our compose file uses (PyYAML is not a dependency).

Block mappings and sequences, plain / quoted scalars, flow sequences of scalars, ``>`` and
``|`` block scalars, comments, anchors, aliases and ``<<`` merge keys. Anything else is a
``ValueError`` naming the line, so the file cannot drift into YAML this reader misreads.
"""

from __future__ import annotations

import json
import re
from typing import Any

_KEY = re.compile(r"""^(?P<key>"[^"]*"|'[^']*'|[^\s'"#][^:#]*?)\s*:(?:\s+(?P<rest>.*))?$""")


def _strip_comment(text: str) -> str:
    if text[:1] in "\"'":
        return text
    cut = text.find(" #")
    return text if cut < 0 else text[:cut].rstrip()


def _scalar(text: str) -> Any:
    text = _strip_comment(text.strip())
    if not text or text in ("~", "null"):
        return None
    if text.startswith('"'):
        return json.loads(text)
    if text.startswith("'"):
        if not text.endswith("'") or len(text) < 2:
            raise ValueError(f"unterminated quoted scalar: {text}")
        return text[1:-1].replace("''", "'")
    if text.startswith("["):
        if not text.endswith("]"):
            raise ValueError(f"unsupported flow sequence: {text}")
        inner = text[1:-1].strip()
        return [_scalar(part) for part in re.findall(r'"[^"]*"|\'[^\']*\'|[^,]+', inner)] if inner else []
    if text[0] in "{&*!|>%@`":
        raise ValueError(f"unsupported YAML here: {text}")
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    return text


class _Reader:
    def __init__(self, text: str) -> None:
        self.raw = text.splitlines()
        self.lines = [(len(line) - len(line.lstrip(" ")), line.strip(), n)
                      for n, line in enumerate(self.raw) if line.strip() and not line.lstrip().startswith("#")]
        self.i = 0
        self.anchors: dict[str, Any] = {}

    def fail(self, why: str) -> None:
        raise ValueError(f"line {self.lines[min(self.i, len(self.lines) - 1)][2] + 1}: {why}")

    def block(self, indent: int) -> Any:
        if self.lines[self.i][1].startswith("-"):
            return self.sequence(indent)
        return self.mapping(indent)

    def nested(self, parent: int) -> Any:
        if self.i < len(self.lines) and self.lines[self.i][0] > parent:
            return self.block(self.lines[self.i][0])
        return None

    def block_scalar(self, style: str, parent: int, line_no: int) -> str:
        body, n = [], line_no + 1
        while n < len(self.raw) and (not self.raw[n].strip() or
                                     len(self.raw[n]) - len(self.raw[n].lstrip(" ")) > parent):
            body.append(self.raw[n].strip())
            n += 1
        while self.i < len(self.lines) and self.lines[self.i][2] < n:
            self.i += 1
        while body and not body[-1]:
            body.pop()
        return ("\n" if style.startswith("|") else " ").join(body) + "\n"

    def value(self, rest: str | None, indent: int, line_no: int) -> Any:
        rest = _strip_comment(rest or "")
        anchor = None
        if rest.startswith("&"):
            anchor, _, rest = rest.partition(" ")
            anchor, rest = anchor[1:], rest.strip()
        if rest.startswith("*"):
            if rest[1:] not in self.anchors:
                self.fail(f"unknown alias {rest}")
            value = self.anchors[rest[1:]]
        elif rest in (">", ">-", "|", "|-"):
            value = self.block_scalar(rest, indent, line_no)
        elif not rest:
            value = self.nested(indent)
        else:
            value = _scalar(rest)
        if anchor:
            self.anchors[anchor] = value
        return value

    def mapping(self, indent: int) -> dict:
        explicit: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        while self.i < len(self.lines) and self.lines[self.i][0] == indent:
            _, text, line_no = self.lines[self.i]
            m = _KEY.match(text)
            if not m or text.startswith("-"):
                self.fail(f"expected 'key: value', got {text!r}")
            key = m["key"].strip()
            key = _scalar(key) if key[0] in "\"'" else key
            self.i += 1
            value = self.value(m["rest"], indent, line_no)
            if key == "<<":
                if not isinstance(value, dict):
                    self.fail("a merge key needs a mapping")
                merged.update(value)
            elif key in explicit:
                self.fail(f"duplicate key {key!r}")
            else:
                explicit[key] = value
        if self.i < len(self.lines) and self.lines[self.i][0] > indent:
            self.fail("unexpected indentation")
        return {**merged, **explicit}

    def sequence(self, indent: int) -> list:
        items = []
        while self.i < len(self.lines) and self.lines[self.i][0] == indent and self.lines[self.i][1].startswith("-"):
            _, text, line_no = self.lines[self.i]
            item = text[1:].strip()
            self.i += 1
            if not item:
                items.append(self.nested(indent))
            elif item[0] not in "\"'[" and _KEY.match(item):
                self.fail("mappings inside sequences are not supported by this reader")
            else:
                items.append(_scalar(item))
        return items


def load(text: str) -> Any:
    reader = _Reader(text)
    if not reader.lines:
        return None
    value = reader.block(reader.lines[0][0])
    if reader.i != len(reader.lines):
        reader.fail("unexpected text after the document")
    return value
