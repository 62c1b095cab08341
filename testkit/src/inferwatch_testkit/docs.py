"""The Python code blocks of a markdown page, and running them as a reader pasting them into
`python -m asyncio` would: in one namespace, top-level `await` allowed.

A block a reader cannot run here is marked with `<!-- not run: why -->` on the line before it.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import linecache
import re
import types
from dataclasses import dataclass
from typing import Any

_BLOCK = re.compile(r"(?:<!-- not run: (?P<why>.*?) -->\n)?```python\n(?P<code>.*?)```", re.DOTALL)


@dataclass(frozen=True)
class CodeBlock:
    code: str
    # Why a reader cannot run it here, or None.
    not_run: str | None


def python_blocks(markdown: str) -> list[CodeBlock]:
    """The ```python blocks of ``markdown``, in order."""
    return [CodeBlock(m["code"], m["why"]) for m in _BLOCK.finditer(markdown)]


def run_block(code: str, namespace: dict[str, Any], where: str) -> None:
    """Run ``code`` in ``namespace``; ``where`` names it in tracebacks, which show its lines."""
    linecache.cache[where] = (len(code), None, code.splitlines(keepends=True), where)
    compiled = compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if compiled.co_flags & inspect.CO_COROUTINE:  # the block awaits at top level
        asyncio.run(types.FunctionType(compiled, namespace)())
    else:
        exec(compiled, namespace)
