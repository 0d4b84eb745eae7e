"""`python -m srzoo`: the same command as `srzoo`."""

from __future__ import annotations

from .cli import run

if __name__ == "__main__":
    raise SystemExit(run())
