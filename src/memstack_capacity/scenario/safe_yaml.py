"""YAML read with limits: a hostile or careless file is a clear error, never a crash or a hang.

``yaml.safe_load`` builds no objects from tags, but it still accepts a document that nests
a thousand levels deep (a RecursionError), an alias that refers to itself, a few lines of
aliases that expand to billions of nodes (they share one object until something copies
them), duplicate keys (the last silently wins), and a file of any size. This loader
refuses each one while reading, naming the limit (docs/scenarios.md, "Limits on scenario
input"). Aliases are counted as expanded: every node is counted as often as it is reached.
"""

from __future__ import annotations

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

#: The largest scenario file read, in bytes (the bundled ones are under 10 KiB).
MAX_BYTES = 4 * 2**20
#: The deepest nesting of blocks and lists, counting each alias as expanded.
MAX_DEPTH = 100
#: The most nodes (values, lists, mappings) in a document, counting each alias as expanded.
MAX_NODES = 200_000
#: The most mapping keys in a document, counting each alias as expanded.
MAX_KEYS = 20_000


class YamlLimitError(ValueError):
    """A document broke one of the limits above; the message names the limit and the line."""


def _line(node_or_mark) -> str:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return f"line {mark.line + 1}: " if mark is not None else ""


class LimitedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys, deep nesting, recursive aliases and
    documents that expand to more nodes or keys than the limits."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        """Compose one node, refusing to nest deeper than :data:`MAX_DEPTH` (the composer recurses)."""
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimitError(f"{_line(self.peek_event().start_mark)}nested more than {MAX_DEPTH} levels deep "
                                     f"(the limit MAX_DEPTH)")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor):
        """A mapping node; a key written twice in it is an error naming the key and both lines."""
        node = super().compose_mapping_node(anchor)
        first: dict = {}
        for key, _ in node.value:
            if not isinstance(key, ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            ident = (key.tag, key.value)
            if ident in first:
                raise YamlLimitError(f"the key `{key.value}` is given twice in one mapping "
                                     f"(lines {first[ident].start_mark.line + 1} and {key.start_mark.line + 1}); "
                                     "keep one")
            first[ident] = key
        return node

    def get_single_node(self):
        """The document's node, after checking its expanded size (aliases counted as expanded)."""
        node = super().get_single_node()
        if node is not None:
            check_expansion(node)
        return node


def _children(node: Node) -> list:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_expansion(root: Node) -> None:
    """Refuse a node graph that is cyclic, or whose expansion is deeper than :data:`MAX_DEPTH`
    or holds more than :data:`MAX_NODES` nodes or :data:`MAX_KEYS` keys.

    Aliases make the graph a DAG whose expansion can be exponentially larger than the
    text; the sizes are computed once per node (iteratively, so depth costs no stack).
    """
    sizes: dict[int, tuple[int, int, int]] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        ident = id(node)
        if finished:
            open_nodes.discard(ident)
            parts = [sizes[id(c)] for c in _children(node)]
            count = 1 + sum(p[0] for p in parts)
            depth = 1 + max((p[1] for p in parts), default=0)
            keys = (len(node.value) if isinstance(node, MappingNode) else 0) + sum(p[2] for p in parts)
            _check_sizes(node, count, depth, keys)
            sizes[ident] = (count, depth, keys)
            continue
        if ident in sizes:
            continue
        if ident in open_nodes:
            raise YamlLimitError(f"{_line(node)}an alias refers to the block that contains it (a recursive alias)")
        open_nodes.add(ident)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise YamlLimitError(f"{_line(child)}an alias refers to the block that contains it "
                                     "(a recursive alias)")
            if id(child) not in sizes:
                stack.append((child, False))


def _check_sizes(node: Node, count: int, depth: int, keys: int) -> None:
    if depth > MAX_DEPTH:
        raise YamlLimitError(f"{_line(node)}nested more than {MAX_DEPTH} levels deep once aliases are expanded "
                             "(the limit MAX_DEPTH)")
    if count > MAX_NODES:
        raise YamlLimitError(f"{_line(node)}expands to more than {MAX_NODES:,} values once aliases are expanded "
                             "(the limit MAX_NODES)")
    if keys > MAX_KEYS:
        raise YamlLimitError(f"{_line(node)}holds more than {MAX_KEYS:,} keys once aliases are expanded "
                             "(the limit MAX_KEYS)")


def load_text(text: str):
    """The parsed YAML of ``text``, within the limits; yaml.YAMLError or YamlLimitError otherwise."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlLimitError(f"larger than {MAX_BYTES:,} bytes (the limit MAX_BYTES)")
    loader = LimitedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
