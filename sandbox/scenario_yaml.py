"""Scenario YAML: text -> plain data (dicts, lists, scalars) plus the line of every value.

libyaml (PyYAML's C parser) reads the text into events and this module builds the data from them
itself, instead of with PyYAML's composer and constructor: those are pure Python, recursive and the
slow part (about 5 s for 10,000 rules), and building here checks every limit at the event that breaks
it, with its line, before anything big or deep exists:

- no aliases (`*name`): a few hundred bytes could expand into gigabytes (billion laughs);
- nesting at most MAX_DEPTH levels: a scenario file needs five, and deep nesting once meant a
  RecursionError instead of an error message (and would crash PyYAML's C composer, which recurses
  in C);
- every mapping key a string, once: YAML reads `1:`, `yes:`, `null:` as a number, true or null,
  and a repeated key silently replaces the first;
- one document, no tags other than YAML's own scalar, sequence and mapping tags.

Plain scalars are resolved as PyYAML's SafeLoader resolves them (YAML 1.1: `yes` is true, `1_000`
is 1000, `.inf` is infinity), so a file means here what it means to any other PyYAML reader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from sandbox.errors import ConfigError

MAX_DEPTH = 16
_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_CORE + name for name in ("str", "int", "float", "bool", "null"))
_CONTAINER_TAGS = frozenset({None, "!", _CORE + "seq", _CORE + "map"})
# Tags a plain scalar resolves to that mean nothing in a scenario file are kept as the text written.
_AS_TEXT = frozenset({_CORE + "merge", _CORE + "value", _CORE + "yaml"})
_RESOLVERS: dict[Any, list[tuple[str, re.Pattern[str]]]] = yaml.SafeLoader.yaml_implicit_resolvers
_KINDS = {bool: "true or false", int: "a number", float: "a number", type(None): "null"}
_MISSING = object()

try:
    from yaml._yaml import CParser as _Parser
except ImportError:  # a PyYAML built without libyaml: the same events, from pure Python
    _Parser = yaml.SafeLoader  # type: ignore[assignment,misc]


@dataclass
class Document:
    """The data of one scenario document and where each part of it was written.

    Lines are 1-based. `_at` maps id() of each dict and list in `data` to its start line and the
    line of each of its keys (a dict) or items (a list). A scalar value is placed on its key's line:
    where it almost always is, and where a reader looks for it."""

    data: Any
    _at: dict[int, tuple[int, Any]] = field(default_factory=dict, repr=False)

    def line(self, path: Sequence[Any], *, key: bool = False) -> int:
        """The line of the value at `path`, or of the deepest value found on the way there; with
        `key`, the line of the last key of `path` rather than of its value."""
        node = self.data
        line = self._at[id(node)][0] if id(node) in self._at else 1
        for depth, part in enumerate(path, 1):
            if id(node) not in self._at or not _has(node, part):
                break
            line = self._at[id(node)][1][part]
            node = node[part]
            if id(node) in self._at and not (key and depth == len(path)):
                line = self._at[id(node)][0]
        return int(line)

    def item_lines(self, path: Sequence[Any]) -> list[int]:
        """The line of each item of the list at `path` (which must be there)."""
        node = self.data
        for part in path:
            node = node[part]
        return [
            self._at[id(item)][0] if id(item) in self._at else line
            for item, line in zip(node, self._at[id(node)][1], strict=True)
        ]


def _has(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        return isinstance(part, str) and part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def load(text: str, source: str) -> Document:
    """The document in `text`; ConfigError naming `source:line:column` for any problem."""
    parser = _Parser(text)
    try:
        return _build(parser, source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError(f"{where}: YAML syntax error: {exc.problem or exc.context}; fix the syntax there.") from exc
    except yaml.reader.ReaderError as exc:
        # libyaml counts the position in bytes of the UTF-8 text.
        line = text.encode("utf-8", "surrogatepass")[: exc.position].count(b"\n") + 1
        raise ConfigError(
            f"{source}:{line}: character U+{exc.character:04X} is not allowed in YAML ({exc.reason}); remove it."
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML error: {exc}; fix the file.") from exc
    finally:
        parser.dispose()


def _build(parser: _Parser, source: str) -> Document:
    """Read every event and build the data. One flat loop over the events, with the open dict or
    list in local variables, because this loop runs once per value of a 1 MiB upload."""
    scalars = _Scalars(source)
    plain = scalars.plain
    at: dict[int, tuple[int, Any]] = {}
    stack: list[tuple[Any, Any, Any]] = []
    container: Any = None  # the open dict or list, None at the top
    lines: Any = None  # the line of each of its keys (a dict) or items (a list)
    key: Any = _MISSING  # in a dict: the key read, waiting for its value
    root: Any = _MISSING
    documents = 0
    get_event = parser.get_event
    while True:
        event: Any = get_event()
        kind = type(event)
        if kind is ScalarEvent:
            if event.tag is None:
                value = plain.get(event.value, _MISSING) if event.implicit[0] else event.value
                if value is _MISSING:
                    value = scalars.value(event)
            else:
                value = scalars.value(event)
            if key is not _MISSING:  # the value of a key: the commonest case, and one needing no line
                container[key] = value
                key = _MISSING
                continue
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            if len(stack) >= MAX_DEPTH:
                mark = event.start_mark
                raise ConfigError(
                    f"{source}:{mark.line + 1}:{mark.column + 1}: nested deeper than {MAX_DEPTH} levels; a scenario"
                    " file needs five (the document, its rules, a rule, `then`, `settle`): flatten it."
                )
            if event.tag not in _CONTAINER_TAGS:
                raise _tag_error(source, event.start_mark, event.tag)
            value = {} if kind is MappingStartEvent else []
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            container, lines, key = stack.pop()
            continue
        elif kind is AliasEvent:
            mark = event.start_mark
            raise ConfigError(
                f"{source}:{mark.line + 1}:{mark.column + 1}: aliases (*{event.anchor}) are not allowed in"
                " scenario files; write the value out."
            )
        elif kind is DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise ConfigError(
                    f"{source}:{event.start_mark.line + 1}: a second YAML document (`---`); a scenario file"
                    " holds one: remove it."
                )
            continue
        elif kind is StreamEndEvent:
            return Document(None if root is _MISSING else root, at)
        else:  # stream start, document end
            continue
        line = event.start_mark.line + 1
        if container is None:
            root = value
        elif type(container) is list:
            lines.append(line)
            container.append(value)
        elif key is _MISSING:
            if type(value) is not str:
                raise _key_error(source, event, value)
            if value in container:
                raise ConfigError(
                    f"{source}:{line}:{event.start_mark.column + 1}: key {shown(value)} appears twice in this"
                    f" mapping (first at line {lines[value]}); YAML keeps only the last: remove one."
                )
            key = value
            container[key] = None  # holds the key's place (and its order) until its value comes
            lines[key] = line
        else:
            container[key] = value
            key = _MISSING
        if kind is not ScalarEvent:
            stack.append((container, lines, key))
            container, key = value, _MISSING
            lines = {} if kind is MappingStartEvent else []
            at[id(value)] = (line, lines)


class _Scalars:
    """Plain scalars resolved and constructed as SafeLoader does, each distinct one once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.constructor = yaml.constructor.SafeConstructor()
        self.cache: dict[tuple[str, str], Any] = {}
        self.plain: dict[str, Any] = {}  # untagged plain scalar -> its value

    def value(self, event: Any) -> Any:
        tag, text = event.tag, event.value
        if tag is None or tag == "!":
            if not event.implicit[0]:
                return text  # quoted or a block scalar: text as written
            if text.isdigit() and text.isascii() and len(text) < 19 and (text[0] != "0" or text == "0"):
                self.plain[text] = int(text)  # a plain decimal (`017` is octal to YAML 1.1): amounts
                return self.plain[text]
            tag = _resolve(text)
            if tag == _CORE + "str" or tag in _AS_TEXT:
                if event.tag is None:
                    self.plain[text] = text
                return text
        elif tag not in _SCALAR_TAGS:
            raise _tag_error(self.source, event.start_mark, tag)
        found = self.cache.get((tag, text), _MISSING)
        if found is _MISSING:
            try:
                found = self.constructor.construct_object(yaml.ScalarNode(tag, text))
            except (ValueError, TypeError, yaml.YAMLError) as exc:
                # e.g. `!!int abc`, or an integer of more digits than Python converts (4300).
                mark = event.start_mark
                what = "has too many digits" if len(text) > 1000 else f"cannot be read as {_short(tag)}"
                raise ConfigError(
                    f"{self.source}:{mark.line + 1}:{mark.column + 1}: the value {shown(text)} {what};"
                    " write a number in the allowed range, or quote it if it is text."
                ) from exc
            self.cache[(tag, text)] = found
            if event.tag is None:
                self.plain[text] = found
        return found


def _resolve(text: str) -> str:
    resolvers = _RESOLVERS.get(text[0] if text else "", [])
    for tag, regexp in [*resolvers, *_RESOLVERS.get(None, [])]:
        if regexp.match(text):
            return tag
    return _CORE + "str"


def _key_error(source: str, event: Any, value: Any) -> ConfigError:
    mark = event.start_mark
    where = f"{source}:{mark.line + 1}:{mark.column + 1}"
    if isinstance(value, dict | list):
        return ConfigError(f"{where}: a key must be text, not a list or mapping; write the key as a quoted string.")
    what = _KINDS.get(type(value), f"a {type(value).__name__}")
    return ConfigError(
        f"{where}: the key {event.value or '(empty)'} is read by YAML as {what}, not text;"
        f" quote the key: {shown(event.value)}:"
    )


def _tag_error(source: str, mark: Any, tag: str) -> ConfigError:
    return ConfigError(
        f"{source}:{mark.line + 1}:{mark.column + 1}: the tag {_short(tag)} is not allowed in scenario files;"
        " remove it."
    )


def _short(tag: str) -> str:
    """`!!int` for YAML's own tags, as they are written."""
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


def shown(value: Any, limit: int = 60) -> str:
    """`value` for a message: written as JSON writes it (`true`, `null`, `"text"`; YAML's `.inf`
    as Infinity), on one line of printable characters, cut short at about `limit` characters."""
    if isinstance(value, date):
        return f"{value.isoformat()} (a date to YAML)"
    text = json.dumps(value, ensure_ascii=False, default=str)
    # JSON leaves U+2028, bidi overrides and the like as they are; a terminal should not get them.
    text = "".join(char if char.isprintable() else f"\\u{ord(char):04x}" for char in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
