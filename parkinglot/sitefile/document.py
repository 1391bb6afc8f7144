"""YAML in and out, keeping the line of every key so errors can point at it.

Why YAML (PyYAML, already a dependency) rather than TOML: operators comment their site
files, the tariff's nested rules read naturally as YAML, and one library both reads and
writes the format (``tomllib`` only reads, so ``site export`` would need another package).
PyYAML's node tree carries line numbers, which the schema check uses in its messages.

YAML 1.1 has traps for a site file, so this loader turns them off: ``20:00`` would be
the integer 1200 (base-60) and ``2026-03-01`` a date object. Such scalars stay strings
here; the schema decides what they mean. A key written twice is refused (PyYAML would
silently keep the last one).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import yaml

Path_ = tuple[Union[str, int], ...]

_KEEP_AS_TEXT = {"tag:yaml.org,2002:timestamp"}


class DocumentError(ValueError):
    """The text is not a YAML document of the expected shape; ``line`` is 1-based (0: unknown)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass
class Document:
    """Plain Python data (dicts, lists, str, int, float, bool, None) and each path's line."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line(self, path: Path_) -> int:
        """The line of ``path``, else of its nearest ancestor that has one (0 if none)."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 0)


def load(text: str) -> Document:
    """Parse one YAML document; raises :class:`DocumentError` with the line of a syntax error."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not valid YAML"
        raise DocumentError(f"not valid YAML: {problem}", mark.line + 1 if mark else 0) from None
    except yaml.YAMLError as exc:
        raise DocumentError(f"not valid YAML: {exc}") from None
    doc = Document(None)
    if node is None:
        return doc
    doc.data = _build(node, (), doc.lines, yaml.SafeLoader(""), set())
    return doc


def _build(node: yaml.Node, path: Path_, lines: dict[Path_, int], constructor: yaml.SafeLoader,
           seen_nodes: set[int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        # an alias (*name) makes the tree a graph: a few lines could expand to billions of items
        if id(node) in seen_nodes:
            raise DocumentError("the value written here is used again through a YAML alias (*name); aliases "
                                "are not supported in a site file: write the value out", node.start_mark.line + 1)
        seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise DocumentError("a key must be a plain word", key_node.start_mark.line + 1)
            key = key_node.value  # keys are names: always text
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise DocumentError("YAML merge keys (<<) are not supported here", key_node.start_mark.line + 1)
            if key in seen:
                raise DocumentError(f"key {key!r} is written twice (first on line {seen[key]})",
                                    key_node.start_mark.line + 1)
            seen[key] = key_node.start_mark.line + 1
            out[key] = _build(value_node, path + (key,), lines, constructor, seen_nodes)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), lines, constructor, seen_nodes) for i, item in enumerate(node.value)]
    if node.tag in _KEEP_AS_TEXT or (node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
                                     and ":" in node.value):
        return node.value
    return constructor.construct_object(node, deep=True)


def dump(data: Any) -> str:
    """YAML text for ``data`` (key order kept, block style, strings quoted only where needed)."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)
