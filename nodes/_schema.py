"""Schema helpers shared by every ZeroVideo node."""
from __future__ import annotations

import dataclasses

from comfy_api.latest import io

PREFIX = "ZeroVideo."
CATEGORY = "ZeroVideo"


def schema(node_id: str, *, search_aliases: list[str] = (), description: str = "", **kw) -> io.Schema:
    """`io.Schema` with our id prefix; search aliases go where this ComfyUI can use them.

    ComfyUI versions whose Schema has a `search_aliases` field get it; older ones (0.3.75, our test
    host) get the aliases appended to the description, which the node search also matches.
    """
    fields = {f.name for f in dataclasses.fields(io.Schema)}
    if search_aliases and "search_aliases" in fields:
        kw["search_aliases"] = list(search_aliases)
    elif search_aliases:
        description = f"{description}\n\nAlso known as: {', '.join(search_aliases)}."
    return io.Schema(node_id=PREFIX + node_id, description=description, **kw)
