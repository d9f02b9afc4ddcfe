"""Output shared by the benchmark commands."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["write_json"]


def write_json(rows: Sequence[dict], path: str | Path) -> None:
    """Write benchmark rows as an indented JSON list, creating the parent directories.

    Args:
        rows: the rows a benchmark's ``run`` returned.
        path: the output ``.json`` file (overwritten).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(rows), indent=1) + "\n")
