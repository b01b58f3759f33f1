"""Shared ending of the benchmark scripts: print a Markdown report and optionally write it."""
from __future__ import annotations

from typing import Optional

from fitter.outputs.atomic import write_text_atomic


def emit(text: str, out: Optional[str]) -> int:
    """Print ``text``; write it (atomically, with a final newline) to ``out`` when given. Returns 0."""
    print(text)
    if out:
        write_text_atomic(out, text + "\n")
    return 0
