import re

import pytest
from hypothesis import given, strategies as st

from journal import Experiment, InvalidInput
from journal.slug import check_title, fold, slugify


@pytest.mark.parametrize("title, slug", [
    ("𝔢𝔫𝔠𝔥𝔞𝔫𝔱𝔢𝔡 𝔳𝔦𝔰𝔦𝔬𝔫 🔅", "enchanted-vision"),
    ("𝕭𝖆𝖘𝖖𝖚𝖎𝖆𝖙 𝕺𝖚𝖗𝖔𝖇𝖔𝖗𝖔𝖘", "basquiat-ouroboros"),
    ("Café Crème", "cafe-creme"),
    ("../../etc/passwd", "etc-passwd"),
    ("🔅🔅", "untitled"),
    ("ＦＵＬＬ　ＷＩＤＴＨ", "full-width"),
])
def test_slug_folds_styled_letters_and_cannot_escape(title, slug):
    assert slugify(title) == slug


def test_long_title_slug_is_bounded_at_a_word():
    slug = slugify("a very long title about the sea and the sky and the birds and the wind over the hills")
    assert len(slug) <= 48 and not slug.endswith("-")
    assert "the-sea" in slug and not slug.endswith("th")


@given(st.text(max_size=400))
def test_any_title_gives_a_safe_slug(title):
    slug = slugify(title)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug) and len(slug) <= 48


@pytest.mark.parametrize("bad", ["", "   ", "two\nlines", "bell\x07", "esc \x1b[31m", "tab\there", "lone \ud800", "x" * 301])
def test_bad_titles_are_refused(bad):
    with pytest.raises(InvalidInput):
        check_title(bad)


def test_titles_with_markup_and_unicode_are_kept_exactly():
    for t in ["[bold red]x[/]", "𝔢𝔫𝔠𝔥𝔞𝔫𝔱𝔢𝔡 𝔳𝔦𝔰𝔦𝔬𝔫 🔅", " leading space", "<script>alert(1)</script>"]:
        assert check_title(t) == t


def test_fold_matches_styled_text():
    assert fold("ENCHANTED") in fold("𝔢𝔫𝔠𝔥𝔞𝔫𝔱𝔢𝔡 𝔳𝔦𝔰𝔦𝔬𝔫")


def _doc(**over):
    doc = {"number": 1, "title": "t", "slug": "t", "dir": "experiments/0001-t", "model": {"id": "m"},
           "images": [{"file": "01.png", "sha256": "0" * 64, "width": 8, "height": 8, "prompt": "secret variant"}],
           "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z", "prompt": "secret",
           "negative_prompt": "neg", "keywords": ["kw"], "grid": {"mode": "matrix"}}
    doc.update(over)
    return doc


def test_document_round_trips():
    exp = Experiment.from_doc(_doc())
    assert Experiment.from_doc(exp.to_doc()) == exp


def test_public_doc_has_no_private_fields():
    pub = Experiment.from_doc(_doc()).public_doc()
    text = repr(pub)
    assert "secret" not in text and "neg" not in text and "kw" not in text and "matrix" not in text
    assert pub["title"] == "t" and pub["model"]["id"] == "m"


@pytest.mark.parametrize("over, complaint", [
    ({"number": 0}, "number"),
    ({"number": True}, "number"),
    ({"status": "draft"}, "status"),
    ({"images": []}, "image"),
    ({"parent": 1}, "parent"),
    ({"params": {"steps": float("nan")}}, "steps"),
    ({"compute": {"device": "cpu", "seconds": float("inf")}}, "seconds"),
    ({"images": [{"file": "a.png", "sha256": "", "width": 1, "height": 1, "score": float("nan")}]}, "score"),
    ({"params": {"nested": {"a": 1}}}, "nested"),
    ({"model": {"id": "m", "colour": "red"}}, "colour"),
    ({"images": [{"file": "../x.png", "sha256": "", "width": 1, "height": 1}]}, "file name"),
    ({"keywords": [""]}, "keywords"),
])
def test_bad_documents_are_refused_with_the_field_named(over, complaint):
    with pytest.raises(InvalidInput, match=complaint):
        Experiment.from_doc(_doc(**over))
