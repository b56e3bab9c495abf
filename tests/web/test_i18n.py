"""The dashboard's two languages cover the same words, and every label of the page has
both (a gap would show a raw key on screen)."""

from __future__ import annotations

import re
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "src" / "rescity" / "web"


def _blocks() -> dict[str, set[str]]:
    text = (WEB / "js" / "i18n.js").read_text(encoding="utf-8")
    out = {}
    for lang in ("en", "zh"):
        body = re.search(rf"\n  {lang}: {{(.*?)\n  }},", text, re.S)
        assert body, lang
        out[lang] = set(re.findall(r"(\w+): \"", body.group(1)))
    return out


def test_both_languages_have_the_same_keys():
    b = _blocks()
    assert len(b["en"]) > 100
    assert b["en"] - b["zh"] == set() and b["zh"] - b["en"] == set()


def test_every_label_of_the_page_and_the_scripts_has_its_words():
    keys = _blocks()["en"]
    html = (WEB / "index.html").read_text(encoding="utf-8")
    used = set(re.findall(r'data-i18n(?:-ph)?="(\w+)"', html))
    for js in (WEB / "js").glob("*.js"):
        used |= set(re.findall(r'\bt\("(\w+)"\)', js.read_text(encoding="utf-8")))
    assert used and used - keys == set()
