"""``{% link 'app:name' %}``: the URL of a view that takes no arguments, reversed once per
URLconf and script prefix. The layout names a dozen on every page, and reversing each on every
request cost about a millisecond a page."""

from __future__ import annotations

import functools

from django import template
from django.urls import get_script_prefix, get_urlconf, reverse

register = template.Library()


@register.simple_tag
def link(name: str) -> str:
    return _reversed(name, get_urlconf(), get_script_prefix())


@functools.cache
def _reversed(name: str, urlconf: str | None, script_prefix: str) -> str:
    # reverse() reads the script prefix itself: it is in the key so each prefix has its own.
    return reverse(name, urlconf=urlconf)
