"""Scenario YAML as input from users: safe loading, ``--set`` overrides, and the error type.

Anchors and aliases are refused at once (an alias bomb loads in milliseconds but explodes when
anything walks it), duplicate keys are refused (PyYAML would keep the last silently), and every
problem is reported as ``dotted.field.path: message`` (with the line for YAML syntax errors).
"""

from __future__ import annotations

import copy
import difflib
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ScenarioError", "PATH_FIELDS", "MAX_INPUT_BYTES", "MAX_NESTING", "SafeScenarioLoader", "read_input_file",
           "parse_yaml", "apply_overrides", "absolute_path", "did_you_mean"]

MAX_INPUT_BYTES = 1 << 20
"""A scenario, compare or sweep file larger than 1 MiB is refused before it is read."""
MAX_NESTING = 64
"""Sections nest a few levels deep; deeper YAML is refused (it would exhaust Python's recursion)."""

PATH_FIELDS = ("network.data_path", "network.checkpoint")  # relative paths resolved on override


class ScenarioError(ValueError):
    """Everything wrong with a scenario, as (dotted field path, message) pairs."""

    def __init__(self, errors: Sequence[tuple[str, str]]):
        self.errors: list[tuple[str, str]] = [(str(p), str(m)) for p, m in errors]
        super().__init__(self.errors)  # args = (errors,): survives pickling

    def __str__(self) -> str:
        return "\n".join(f"{path}: {message}" for path, message in self.errors)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'rows'?"`` for the choice closest to a misspelt key, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def absolute_path(path: str | Path, base: Path) -> Path:
    """``path`` made absolute against ``base`` (``~`` expanded, ``..`` folded)."""
    p = Path(path).expanduser()
    return Path(os.path.normpath(p if p.is_absolute() else base / p))


class SafeScenarioLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases (alias bombs) and duplicate keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors (&) and aliases (*) are not allowed in scenario files", event.start_mark)
        return super().compose_node(parent, index)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        """A scalar YAML resolves but Python cannot build (an integer of more than 4,300 digits, a
        date with month 13) is a YAML error at its line, not a crash."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value: {exc}", node.start_mark) from None

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


def read_input_file(path: Path, what: str) -> str:
    """The text of an input file, refused with a clear error when it is not a regular file (a FIFO
    or a device would hang or never end), is larger than :data:`MAX_INPUT_BYTES`, or is not UTF-8."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        raise ScenarioError([(str(path), f"cannot read {what}: {exc.strerror or exc}")]) from None
    if not stat.S_ISREG(info.st_mode):
        raise ScenarioError([(str(path), f"cannot read {what}: not a regular file")])
    if info.st_size > MAX_INPUT_BYTES:
        raise ScenarioError([(str(path), f"{what} of {info.st_size:,} bytes, more than the "
                                         f"{MAX_INPUT_BYTES:,} an input file may have")])
    try:
        with path.open("rb") as f:
            data = f.read(MAX_INPUT_BYTES + 1)
        if len(data) > MAX_INPUT_BYTES:  # grew while we looked
            raise ScenarioError([(str(path), f"{what} larger than {MAX_INPUT_BYTES:,} bytes")])
        return data.decode("utf-8")
    except OSError as exc:
        raise ScenarioError([(str(path), f"cannot read {what}: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError([(str(path), f"{what} is not UTF-8 text (byte {exc.start}: {exc.reason})")]) from None


def _nesting(value: Any) -> int:
    """Depth of nested mappings and lists, walked without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= MAX_NESTING:
                stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def parse_yaml(text: str, where: str) -> Any:
    try:
        value = yaml.load(text, Loader=SafeScenarioLoader)  # noqa: S506 - a SafeLoader subclass
        if _nesting(value) > MAX_NESTING:
            raise ScenarioError([(where, f"YAML nested more than {MAX_NESTING} levels deep")])
        return value
    except RecursionError:
        raise ScenarioError([(where, f"YAML nested more than {MAX_NESTING} levels deep")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        context = f" ({exc.context})" if exc.context else ""
        raise ScenarioError([(where, f"YAML error at {at}{exc.problem}{context}")]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([(where, f"YAML error: {exc}")]) from None


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a copy of ``raw``.

    A ``policy.name`` override is applied first, and when it changes the policy the section
    starts from that policy's defaults. Relative paths given here are relative to the cwd.
    """
    raw = copy.deepcopy(raw)
    parsed = []
    for text in overrides:
        key, sep, value_text = text.partition("=")
        key = key.strip()
        if not sep or not key or not all(part.strip() for part in key.split(".")):
            raise ScenarioError([(f"override {text!r}", "malformed: expected key.path=value, e.g. chip.levels=4")])
        value = parse_yaml(value_text, f"override {text!r}")
        if key in PATH_FIELDS and isinstance(value, str) and value:
            value = str(absolute_path(value, Path.cwd()))
        parsed.append((key.split("."), value, text))
    for parts, value, text in sorted(parsed, key=lambda p: p[0] != ["policy", "name"]):
        if parts == ["policy", "name"] and isinstance(raw.get("policy"), dict) \
                and raw["policy"].get("name", "periodic") != value:
            raw["policy"] = {}
        node = raw
        for depth, part in enumerate(parts[:-1]):
            if node.get(part) is None:
                node[part] = {}
            if not isinstance(node[part], dict):
                where = ".".join(parts[:depth + 1])
                raise ScenarioError([(f"override {text!r}", f"{where} is not a mapping")])
            node = node[part]
        node[parts[-1]] = value
    return raw


