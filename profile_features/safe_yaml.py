"""YAML loading that refuses alias bombs before anything is built from them.

`yaml.safe_load` shares an aliased node instead of copying it, so a 1 KB "billion laughs"
document loads quickly into a few objects, and then whatever walks the result (pydantic, a
`yaml.safe_dump` round trip, JSON) visits every alias expansion: minutes and gigabytes. Here the
document is composed first (aliases are references, cheap), its size with every alias expanded is
counted over distinct nodes once each, and a document larger than `max_nodes` after expansion,
or one that holds itself (a recursive alias), is refused before it is constructed.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["load_yaml", "MAX_NODES", "MAX_BYTES"]

MAX_NODES = 100_000  # a job config has a few hundred nodes; a large one with lists a few thousand
MAX_BYTES = 10_000_000


def _expanded_size(root: yaml.Node, source: str, max_nodes: int) -> int:
    """Nodes in the document with every alias expanded, counting each distinct node's subtree once."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    # Iterative post-order walk: a deep document must not hit Python's recursion limit.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            children = _children(node)
            sizes[key] = min(max_nodes + 1, 1 + sum(sizes[id(child)] for child in children))
            in_progress.discard(key)
            continue
        if key in sizes:
            continue
        if key in in_progress:
            raise ValueError(f"{source}: a YAML alias refers to a node that contains it (recursive alias)")
        in_progress.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in in_progress:
                raise ValueError(f"{source}: a YAML alias refers to a node that contains it (recursive alias)")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load_yaml(text: str, source: str = "<yaml>", max_nodes: int = MAX_NODES) -> Any:
    """`yaml.safe_load(text)`, refusing documents over `MAX_BYTES` or over `max_nodes` nodes once
    aliases are expanded (`source` names the file in the error)."""
    if len(text) > MAX_BYTES:
        raise ValueError(f"{source}: {len(text)} characters of YAML, more than a config can be ({MAX_BYTES})")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, source, max_nodes)
        if size > max_nodes:
            raise ValueError(
                f"{source}: the YAML expands to more than {max_nodes} nodes through its aliases "
                "(an alias bomb?); refused before loading"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()
