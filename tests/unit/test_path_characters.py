"""paths.normalize refuses invisible format characters and slash look-alikes, also when they
arrive percent-encoded, naming the code point; ordinary non-ASCII names still pass."""

from __future__ import annotations

import pytest

from ws_artifacts.core.errors import PathError
from ws_artifacts.core.paths import normalize
from ws_artifacts.serving.guard.policy import LocationPolicy, LocationRefused


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("a/model\u200b.pkl", r"invisible character U\+200B \(ZERO WIDTH SPACE\); remove it"),
        ("\ufeffa.txt", r"invisible character U\+FEFF \(ZERO WIDTH NO-BREAK SPACE\)"),
        ("a\u2060b", r"invisible character U\+2060 \(WORD JOINER\)"),
        ("soft\u00adhyphen", r"invisible character U\+00AD \(SOFT HYPHEN\)"),
        ("a%E2%80%8Bb", r"invisible character U\+200B"),
        ("workspaces\u2044team-b/x", r"U\+2044 \(FRACTION SLASH\), which looks like a slash"),
        ("workspaces\u2215team-b/x", r"U\+2215 \(DIVISION SLASH\), which looks like a slash"),
        ("a\u29f8b", r"U\+29F8 \(BIG SOLIDUS\)"),
        ("a\u2571b", r"U\+2571 \(BOX DRAWINGS LIGHT DIAGONAL UPPER RIGHT TO LOWER LEFT\)"),
        ("a\u1735b", r"U\+1735 \(PHILIPPINE SINGLE PUNCTUATION\)"),
        ("a\u2216b", r"U\+2216 \(SET MINUS\)"),
        ("a%E2%88%95b", r"U\+2215 \(DIVISION SLASH\)"),
        ("a\uff0fb", "reads as 'a/b' after Unicode compatibility folding"),
    ],
    ids=[
        "zero-width-space",
        "bom",
        "word-joiner",
        "soft-hyphen",
        "encoded-zero-width-space",
        "fraction-slash",
        "division-slash",
        "big-solidus",
        "box-diagonal",
        "philippine-punctuation",
        "set-minus",
        "encoded-division-slash",
        "fullwidth-solidus",
    ],
)
def test_invisible_and_lookalike_characters_are_refused(path: str, match: str) -> None:
    with pytest.raises(PathError, match=match):
        normalize(path)


@pytest.mark.parametrize(
    "path",
    ["modèle/données.csv", "日本語/ノート.txt", "emoji/🙂.png", "a/b-c_d.e"],
    ids=["accents", "katakana-no", "emoji", "ascii"],
)
def test_ordinary_names_pass(path: str) -> None:
    assert normalize(path) == path


POLICY = LocationPolicy(None, ())


@pytest.mark.parametrize(
    ("uri", "empty_is_unset", "match"),
    [
        ("", False, "an empty location is read by MLflow as the server's working directory"),
        ("traces", True, "a relative path is read by MLflow against the server's working"),
        ("./workspaces/team-a", True, "a relative path"),
    ],
    ids=["empty-trace-tag", "relative", "relative-dot"],
)
def test_empty_and_relative_locations_are_refused(
    uri: str, empty_is_unset: bool, match: str
) -> None:
    with pytest.raises(LocationRefused, match=match):
        POLICY.check(uri, "team-a", field="trace tag x", empty_is_unset=empty_is_unset)


def test_empty_passes_where_mlflow_reads_it_as_unset() -> None:
    assert POLICY.check("", "team-a", field="the workspace default_artifact_root") is None
