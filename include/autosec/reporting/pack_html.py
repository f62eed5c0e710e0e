"""A compliance pack as one self-contained HTML page (no script, nothing loaded from elsewhere).

It shows the same figures as the PDF, from the same view
(:func:`autosec.reporting.packs.pack_view`), with the long tables bounded; the complete lists are
in the files beside it, whose sha256 it lists. Every value is escaped: titles, names and
reasons come from scanners and people.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import jinja2

from autosec.reporting.packs import Pack, PieceRef, pack_view

TEMPLATE_NAME = "pack.html.j2"


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("autosec.reporting", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_pack_html(pack: Pack, files: Sequence[PieceRef] = ()) -> bytes:
    """The pack as UTF-8 HTML; the same pack and files give the same bytes."""
    template = _environment().get_template(TEMPLATE_NAME)
    return template.render(**pack_view(pack, files)).encode("utf-8")


__all__ = ["render_pack_html"]
