"""An address as people read it: groups of four, breaking only between groups, with the
characters that tell it apart from a look-alike marked."""

from __future__ import annotations

from collections.abc import Iterable

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

register = template.Library()

GROUP = 4


def _piece(text: str, marked: bool) -> SafeString:
    return format_html("<mark>{}</mark>", text) if marked else format_html("{}", text)


def _runs(chunk: str, offset: int, marked: frozenset[int]) -> SafeString:
    """One group, with each run of marked characters inside one <mark>."""
    parts: list[SafeString] = []
    run, run_marked = "", False
    for i, ch in enumerate(chunk):
        is_marked = offset + i in marked
        if run and is_marked != run_marked:
            parts.append(_piece(run, run_marked))
            run = ""
        run, run_marked = run + ch, is_marked
    if run:
        parts.append(_piece(run, run_marked))
    return SafeString("".join(parts))


@register.simple_tag
def address_groups(address: str, marked: Iterable[int] | None = None) -> SafeString:
    """Groups are spans spaced by margin, not by characters, so copying the address yields it
    exactly, with no spaces to paste into a venue form."""
    marks = frozenset(marked or ())
    groups = format_html_join(
        "",
        '<span class="g">{}</span>',
        ((_runs(address[i : i + GROUP], i, marks),) for i in range(0, len(address), GROUP)),
    )
    return format_html('<span class="addr" translate="no">{}</span>', groups)
