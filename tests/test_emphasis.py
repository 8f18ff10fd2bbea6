"""AUTOMATIC1111's emphasis syntax: the parser against A1111's documented examples (the doctests of
``parse_prompt_attention`` in modules/prompt_parser.py), what it refuses that A1111 silently reads otherwise, keyword
weights from -k and spec files, and token budgets that count words, not brackets."""

import json

import pytest

from tests.helpers import run_cli
from workshop.compose.emphasis import Segment, escape, has_emphasis, parse, plain, weighted
from workshop.compose.errors import SpecError
from workshop.compose.grid import build_grid
from workshop.compose.prompt import Keyword
from workshop.compose.spec import spec_from
from workshop.compose.tokens import budget, clip_bpe


def flat(text: str) -> list[tuple[str, float]]:
    """Like A1111's result: [text, weight] pairs, BREAK as ("BREAK", -1)."""
    out = []
    for k, chunk in enumerate(parse(text)):
        if k:
            out.append(("BREAK", -1))
        out += [(s.text, s.weight) for s in chunk]
    return out


@pytest.mark.parametrize("text, expected", [
    # A1111's doctests, word for word (the weights are the same floats: the same multiplications in the same order)
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    # their long example with its stray "(" closed after the house (A1111 would weigh the rest of the line ×1.1)
    ("a (((house:1.3))) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.5730000000000004), (" ", 1.0), ("on", 1 / 1.1), (" a ", 1.0), ("hill", 0.5),
      (", sun, ", 1.0), ("sky", 1.3310000000000004), (".", 1.0)]),
    # the rest of the syntax A1111 documents
    ("[[faded]]", [("faded", 1 / 1.1 / 1.1)]),
    ("((a) b:0.5)", [("a", 1.1 * 0.5), (" b", 0.5)]),
    ("(x:-1) (y:+.5) (z:2.)", [("x", -1.0), (" ", 1.0), ("y", 0.5), (" ", 1.0), ("z", 2.0)]),
    ("a \\\\ b", [("a \\ b", 1.0)]),
    ("ratio 16:9, (a:b c)", [("ratio 16:9, ", 1.0), ("a:b c", 1.1)]),  # colons that weigh nothing are words
    ("a cat BREAK a dog", [("a cat", 1.0), ("BREAK", -1), ("a dog", 1.0)]),
    ("(a) BREAK [b]", [("a", 1.1), ("BREAK", -1), ("b", 1 / 1.1)]),
    ("a BREAKFAST", [("a BREAKFAST", 1.0)]),
    # spaces round a weight: A1111's pattern allows them (issue 26: "(pink bow: 1.2)" in real infotexts)
    ("a (pink bow: 1.2)", [("a ", 1.0), ("pink bow", 1.2)]),
    ("(x :0.5 )", [("x ", 0.5)]),
    ("", [("", 1.0)]),
])
def test_parse_as_a1111_does(text, expected):
    assert flat(text) == expected


@pytest.mark.parametrize("text, message", [
    ("(unbalanced", 'unbalanced "(" at character 1: close it with ")" or escape it as \\('),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", 'unbalanced "(" at character 3'),  # A1111's own doctest
    ("a red circle)", 'unbalanced ")" at character 13: open it with "(" or escape it as \\)'),
    ("faded]", 'unbalanced "]" at character 6'),
    ("[a)", '")" at character 3 closes the "[" at character 1: close that one with "]" first'),
    ("(a]", '"]" at character 3 closes the "(" at character 1'),
    ("(a:1.2.3)", 'the weight "1.2.3" at character 4 is not a number'),
    ("(a:.)", 'the weight "." at character 4 is not a number'),
    ("(a:high)", 'the weight "high" at character 4 is not a number'),
    ("(a:)", "the weight at character 4 is missing"),
    ("a:1.3)", 'unbalanced ")" at character 6'),
    ("[cat:dog]", '"[" at character 1 holds ":" but \'dog\' after the last one is no step to switch at'),
    ("[a|b:0.5]", 'holds both ":" and "|"'),
    ("a [b:c:2.5]", "the edit at character 3 switches at 2.5, past the end"),
    ("a [b:(c:x):2]", 'the weight "x" at character 9 is not a number'),  # checked where it stands in the prompt
    ("(a BREAK b)", 'BREAK at character 4 is inside the "(" at character 1: move it out of the brackets'),
    ("C:\\pics", 'a lone "\\" at character 3: write \\\\ for a backslash'),
    ("a cat AND a dog", "AND at character 7 is A1111's composable diffusion"),  # issue 26: was sent as a word
])
def test_what_a1111_silently_tolerates_is_refused_naming_the_character(text, message):
    with pytest.raises(SpecError) as caught:
        parse(text)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("the prompt: ")


def test_has_emphasis_plain_and_the_keyword_renderer_agree():
    assert not has_emphasis("a red circle: glowing, 16:9") and has_emphasis("a (red) circle")
    assert has_emphasis("a \\(red\\) circle") and has_emphasis("a BREAK b") and not has_emphasis("BREAKFAST")
    assert plain("portrait of a gnome, (in the style of Basquiat:1.3), [blurry]") == "portrait of a gnome, in the style of Basquiat, blurry"
    assert plain("a \\(red\\) circle") == "a (red) circle" and plain("a BREAK b") == "a b"
    for text in ["smile :)", "[1] (2) \\ x", "plain words"]:  # weighted escapes what it writes: it parses back
        assert parse(weighted(text, 1.3)) == ((Segment(text, 1.3),),)
        assert plain(escape(text)) == text


@pytest.mark.parametrize("typed, keyword", [
    ("in the style of Basquiat:1.3", Keyword("in the style of Basquiat", weight=1.3)),
    ("glowing: 0.5 ", Keyword("glowing", weight=0.5)),
    ("glowing:0", Keyword("glowing", weight=0.0)),
    ("(in the style of Basquiat:1.3)", Keyword("(in the style of Basquiat:1.3)")),  # already emphasis: as it is
    ("aspect ratio 16:9", Keyword("aspect ratio 16:9")),  # a digit before the colon: a ratio or a time
    ("artist: Basquiat", Keyword("artist: Basquiat")),  # words after the colon
    ("glowing", Keyword("glowing")),
    ("<lora:tinydetail:0.8>", Keyword("<lora:tinydetail:0.8>")),  # a LoRA's tag: its strength inside (was refused)
    ("<lora:tinydetail>:0.5", Keyword("<lora:tinydetail>", weight=0.5)),  # rendered <lora:tinydetail:0.5>
    ("[cat:dog:0.5]", Keyword("[cat:dog:0.5]")),  # prompt editing: as it is
])
def test_a_keyword_with_a_trailing_weight(typed, keyword):
    assert Keyword.from_text(typed) == keyword


@pytest.mark.parametrize("typed", ["glowing:1,3", "glowing:1.3.1", "glowing:x2"])
def test_a_keyword_weight_that_is_no_number_is_refused(typed):
    with pytest.raises(SpecError, match="is not a number"):
        Keyword.from_text(typed)


def test_spec_keywords_with_weights_render_as_emphasis():
    spec = spec_from({"prompt": "portrait of a gnome", "keywords": [
        "in the style of Basquiat:1.3", {"text": "glowing", "weight": 0.5}, {"text": "striped", "on": False, "weight": 2},
        {"text": "ratio 2:1"}]})
    assert spec.prompt.keywords[1:3] == (Keyword("glowing", weight=0.5), Keyword("striped", on=False, weight=2.0))
    cell = build_grid(spec).cells[0]
    assert cell.prompt == "portrait of a gnome, (in the style of Basquiat:1.3), (glowing:0.5), ratio 2:1"
    assert cell.keywords == ("in the style of Basquiat", "glowing", "ratio 2:1")  # the plain texts
    with pytest.raises(SpecError, match="weight must be a number"):
        spec_from({"prompt": "p", "keywords": [{"text": "glowing", "weight": "high"}]})
    with pytest.raises(SpecError, match="finite"):
        spec_from({"prompt": "p", "keywords": [{"text": "glowing", "weight": float("inf")}]})


@pytest.mark.parametrize("parts, message", [
    ({"prompt": "a (red circle"}, 'the prompt: unbalanced "(" at character 3'),
    ({"prompt": "a circle", "negative": "blurry]"}, 'the negative prompt: unbalanced "]" at character 7'),
    ({"prompt": "a circle", "keywords": ["(glowing"]}, "the keyword '(glowing': unbalanced \"(\" at character 1"),
])
def test_a_prompt_part_that_does_not_parse_is_refused_before_the_grid(parts, message):
    with pytest.raises(SpecError) as caught:
        spec_from(parts)
    assert message in str(caught.value)


def test_cli_keyword_weights_in_the_dry_run(capsys):
    code, out, err = run_cli(capsys, "grid", "-p", "portrait of a gnome", "-k", "in the style of Basquiat:1.3",
                             "-k", "(glowing)", "--off", "striped:0.5", "--dry-run", "--json")
    assert code == 0, err
    [cell] = json.loads(out)
    assert cell["prompt"] == "portrait of a gnome, (in the style of Basquiat:1.3), (glowing)"
    assert cell["keywords"] == ["in the style of Basquiat", "(glowing)"]
    plain_cell = json.loads(run_cli(capsys, "grid", "-p", "portrait of a gnome, in the style of Basquiat, glowing",
                                    "--dry-run", "--json")[1])[0]
    assert cell["tokens"] == plain_cell["tokens"]  # the words are counted, not the brackets and the weight
    code, out, err = run_cli(capsys, "grid", "-p", "a gnome", "-k", "glowing:1,3", "--dry-run")
    assert code == 1 and err.count("\n") == 1 and "weight '1,3' is not a number" in err
    code, out, err = run_cli(capsys, "grid", "-p", "a (gnome", "--dry-run", "--json")
    assert code == 1 and err.strip() == 'promptism: the prompt: unbalanced "(" at character 3: close it with ")" or escape it as \\('


def test_budgets_count_the_words_not_the_syntax():
    encode = clip_bpe()
    words = "portrait of a gnome, in the style of Basquiat"
    weighted_prompt = "portrait of a ((gnome)), (in the style of Basquiat:1.3)"
    assert budget(weighted_prompt, ["in the style of Basquiat"], encode) == budget(words, ["in the style of Basquiat"], encode)
    long = ", ".join(f"word{i}" for i in range(40))
    over = budget(f"{long}, (glowing:1.2)", ["glowing"], encode)
    assert over.over and over.truncated == ("glowing",) and over.wholly == ("glowing",)
    # BREAK starts a window of its own: the keyword after it fits again
    split = budget(f"{long} BREAK (glowing:1.2)", ["glowing"], encode)
    assert split.truncated == () and split.limit == 2 * 77
    assert split.tokens == len(encode(long)) + 2 + len(encode("glowing")) + 2
    assert budget(f"{long}, (glowing:1.2)", ["(glowing:1.2)"], encode).truncated == ("(glowing:1.2)",)  # found by its words


def test_a_prompt_refused_in_a_dry_run_prints_no_half_table(capsys):
    code, out, err = run_cli(capsys, "grid", "-p", "a cat AND a dog", "--dry-run")
    assert code == 1 and out == "" and "AND at character 7" in err and len(err.strip().splitlines()) == 1
