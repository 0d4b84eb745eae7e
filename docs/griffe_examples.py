"""A Griffe extension: srzoo's ``Example:`` docstring sections render as code examples.

srzoo's docstrings title their doctest section ``Example:`` (the house style); Griffe's Google
parser reads only ``Examples:`` as an examples section and would render the ``>>>`` lines as
prose. The API reference (``mkdocstrings`` in ``mkdocs.yml``) loads this file.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"(?m)^(\s*)Example:[ \t]*$")


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` section titles to ``Examples:`` before docstrings are parsed."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the section title of one object's docstring (Griffe hook)."""
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
