"""Translations for the console and storefront.

Chinese is the source language: templates and code write the zh-CN text and wrap it in
``_()``; each module registers English for its strings. A missing translation shows the
Chinese text rather than a key, so nothing renders blank.
"""

from __future__ import annotations

from siyu.kit.context import current_language

LANGUAGES = {"zh-CN": "简体中文", "en": "English"}
_en: dict[str, str] = {}


def register(catalog: dict[str, str]) -> None:
    """Add zh-CN → English pairs."""
    _en.update(catalog)


def gettext(text: str, lang: str | None = None) -> str:
    lang = lang or current_language()
    if lang.startswith("en"):
        return _en.get(text, text)
    return text


def pick_language(cookie: str | None, accept: str | None, default: str = "zh-CN") -> str:
    if cookie in LANGUAGES:
        return cookie
    if accept:
        for part in accept.split(","):
            tag = part.split(";")[0].strip().lower()
            if tag.startswith("zh"):
                return "zh-CN"
            if tag.startswith("en"):
                return "en"
    return default
