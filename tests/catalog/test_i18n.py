"""Every Chinese text the catalog pages can show has an English translation (pages rendered
in the other tests cover the common states; this covers error states and labels too)."""

from __future__ import annotations

import re
from pathlib import Path

import siyu.catalog.views as views
from siyu.kit.i18n import gettext

TEMPLATES = Path(views.__file__).parents[1] / "web" / "templates"
FILES = [*sorted((TEMPLATES / "console" / "catalog").glob("*.html")), *sorted((TEMPLATES / "store" / "catalog").glob("*.html")),
         TEMPLATES / "store" / "home.html"]
PATTERNS = [r'_\("([^"]+)"\)', r'm\.(?:field|select)\("[^"]*",\s*"([^"]+)"', r'(?:placeholder|hint)="([^"]+)"',
            r'm\.badge\("([^"]+)"', r'm\.empty\("([^"]+)"']
CJK = re.compile(r"[\u3400-\u9fff]")


def _template_texts() -> set[str]:
    out: set[str] = set()
    for f in FILES:
        text = f.read_text(encoding="utf-8")
        for p in PATTERNS:
            out.update(t for t in re.findall(p, text) if CJK.search(t))
    return out


def _view_texts() -> set[str]:
    out: set[str] = set(re.findall(r'_\("([^"]+)"\)', Path(views.__file__).read_text(encoding="utf-8")))
    for table in (views.STATUS_LABELS, views.KIND_LABELS, views.CARD_LABELS, views.SORT_LABELS, views.ACTION_DONE,
                  views.PRODUCT_FIELD_MESSAGES, views.SKU_FIELD_MESSAGES, views.CATEGORY_FIELD_MESSAGES, views.STORE_SORTS):
        out.update(table.values())
    return {t for t in out if CJK.search(t)}


def test_every_text_has_english() -> None:
    texts = _template_texts() | _view_texts()
    assert len(texts) > 150
    missing = sorted(t for t in texts if gettext(t, "en") == t)
    assert not missing, missing
    still_chinese = sorted(t for t in texts if CJK.search(gettext(t, "en")))
    assert not still_chinese, still_chinese
