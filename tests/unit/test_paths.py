"""Path normalisation, splitting and ownership: exact cases, then properties (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ws_artifacts.core.errors import OwnershipError, PathError
from ws_artifacts.core.paths import (
    MAX_PATH_LENGTH,
    LogicalPath,
    check_owner,
    is_valid_workspace_name,
    is_within,
    normalize,
    reads_as_workspaces,
    split_logical,
    split_under,
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (None, ""),
        ("", ""),
        ("/", ""),
        ("a/b.txt", "a/b.txt"),
        ("/a//b/./c/", "a/b/c"),
        ("./a/.", "a"),
        ("a/...", "a/..."),  # three dots is a name, not a step up
        ("a/.hidden/..b", "a/.hidden/..b"),
        ("model%20v1/x", "model%20v1/x"),  # harmless escapes are kept literally
        ("caf\u00e9/\U0001f600.txt", "caf\u00e9/\U0001f600.txt"),
        ("a" * MAX_PATH_LENGTH, "a" * MAX_PATH_LENGTH),
    ],
    ids=[
        "none",
        "empty",
        "slash",
        "plain",
        "slashes-and-dots",
        "dot-segments",
        "three-dots",
        "dot-names",
        "harmless-escape",
        "unicode-nfc",
        "longest",
    ],
)
def test_normalize_accepts(path: str | None, expected: str) -> None:
    assert normalize(path) == expected


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("../x", r"contains '\.\.'"),
        ("a/b/../../c", r"contains '\.\.'"),
        ("a\\b", "backslash"),
        ("a/%2e%2e/b", "percent-escaped"),
        ("a/%2E%2e/b", "percent-escaped"),
        ("a%2fb", "percent-escaped"),
        ("a%5cb", "percent-escaped"),
        ("a%00", "percent-escaped"),
        ("a/%252e%252e/b", "decodes to '..'"),
        ("a/%25252e/b", "decodes to '.'"),
        ("a%252fb", "decodes to 'a/b'"),
        ("a%25255cb", "backslash"),
        ("a%2525252e", "encoded more than 4 times"),
        ("a/\uff0e\uff0e/b", "reads as '..'"),
        ("a/\u2025/b", "reads as '..'"),
        ("a\uff0fb", "reads as 'a/b'"),
        ("a\uff3cb", "reads as"),
        ("a/b\x00", "U\\+0000"),
        ("team-b\n", "U\\+000A"),
        ("a\rb", "U\\+000D"),
        ("a\x7f", "U\\+007F"),
        ("a\x85b", "U\\+0085"),
        ("a\u2028b", "U\\+2028"),
        ("a\u202egnp.exe", "U\\+202E"),
        ("a\ud800", "U\\+D800"),
        ("cafe\u0301", "NFC"),
        ("\u212aelvin", "NFC"),
        ("a" * (MAX_PATH_LENGTH + 1), "longer than the 4096"),
    ],
    ids=[
        "dotdot",
        "nested-dotdot",
        "backslash",
        "encoded-dotdot",
        "encoded-dotdot-case",
        "encoded-slash",
        "encoded-backslash",
        "encoded-nul",
        "double-encoded-dotdot",
        "triple-encoded-dot",
        "double-encoded-slash",
        "triple-encoded-backslash",
        "encoded-five-times",
        "fullwidth-dots",
        "two-dot-leader",
        "fullwidth-slash",
        "fullwidth-backslash",
        "nul",
        "trailing-newline",
        "carriage-return",
        "del",
        "nel",
        "line-separator",
        "bidi-override",
        "lone-surrogate",
        "nfd",
        "kelvin-sign",
        "too-long",
    ],
)
def test_normalize_refuses(path: str, match: str) -> None:
    with pytest.raises(PathError, match=match):
        normalize(path)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", LogicalPath("", None, "")),
        ("1/run/artifacts/x", LogicalPath("1/run/artifacts/x", None, "")),
        ("workspaces/team-a", LogicalPath("", "team-a", "")),
        ("workspaces/team-a/1/x", LogicalPath("", "team-a", "1/x")),
        ("p/q/workspaces/team-a/1", LogicalPath("p/q", "team-a", "1")),
        (
            "workspaces/team-a/1/workspaces/team-b/x",
            LogicalPath("", "team-a", "1/workspaces/team-b/x"),
        ),
        ("workspaces/default/x", LogicalPath("", "default", "x")),
    ],
    ids=[
        "root",
        "legacy",
        "workspace-root",
        "workspace-path",
        "below-a-root",
        "first-segment-wins",
        "default-named",
    ],
)
def test_split_logical(path: str, expected: LogicalPath) -> None:
    assert split_logical(path) == expected


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("workspaces", "without a workspace name"),
        ("workspaces/TEAM-B/x", "'TEAM-B', which is not a valid workspace name"),
        ("workspaces/team-b\n/x", "not a valid workspace name"),
        ("workspaces/t/x", "'t', which is not a valid workspace name"),
        ("workspaces/api/x", "'api', which is not a valid workspace name"),
        ("workspaces/-team/x", "not a valid workspace name"),
        ("workspaces/te\uff41m-b/x", "not a valid workspace name"),
        ("Workspaces/team-b/x", "segment 'Workspaces'"),
        ("x/WORKSPACES/team-b", "segment 'WORKSPACES'"),
        ("\uff57orkspaces/team-b", "only the exact lowercase 'workspaces'"),
        ("%77orkspaces/team-b", "segment '%77orkspaces'"),
    ],
    ids=[
        "no-name",
        "upper-case-name",
        "newline-name",
        "short-name",
        "reserved-name",
        "leading-hyphen",
        "fullwidth-letter-name",
        "case-segment",
        "upper-segment",
        "fullwidth-segment",
        "encoded-segment",
    ],
)
def test_split_logical_refuses(path: str, match: str) -> None:
    with pytest.raises(PathError, match=match):
        split_logical(path)


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        ("", "workspaces/team-a/1", LogicalPath("", "team-a", "1")),
        ("prefix", "workspaces/team-a/1", LogicalPath("prefix", "team-a", "1")),
        (
            "workspaces/team-a/1",
            "x/workspaces/team-b/y",
            LogicalPath("", "team-a", "1/x/workspaces/team-b/y"),
        ),
        ("", "1/run/artifacts", LogicalPath("1/run/artifacts", None, "")),
    ],
    ids=["destination", "destination-prefix", "below-a-workspace", "legacy"],
)
def test_split_under(base: str, path: str, expected: LogicalPath) -> None:
    assert split_under(base, path) == expected


@pytest.mark.parametrize(
    ("base", "path"),
    [
        ("", "x/workspaces/team-a/1"),
        ("prefix", "x/workspaces/team-a/1"),
        ("", "1/r/workspaces/team-b"),
    ],
    ids=["deeper-than-root", "deeper-than-prefix", "legacy-then-workspace"],
)
def test_split_under_refuses_a_deeper_workspaces_segment(base: str, path: str) -> None:
    with pytest.raises(PathError, match="a workspace's artifacts start at 'workspaces/<name>/'"):
        split_under(base, path)


def test_check_owner_refuses_another_workspace() -> None:
    with pytest.raises(
        OwnershipError,
        match="belongs to workspace 'team-b', but the request runs in workspace 'team-a'",
    ):
        check_owner(LogicalPath("", "team-b", "1"), "team-a", operation="read")
    with pytest.raises(OwnershipError, match="'1/x': it belongs to workspace 'default'"):
        check_owner(LogicalPath("1/x", None, ""), "team-a", operation="read")
    check_owner(LogicalPath("", "team-a", "1"), "team-a", operation="read")
    check_owner(LogicalPath("1/x", None, ""), "default", operation="read")
    check_owner(LogicalPath("", "team-b", "1"), None, operation="read")


@pytest.mark.parametrize(
    ("scope", "key", "inside"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", True),
        ("a/b", "a/bc", False),
        ("a/b", "a", False),
        ("", "x", True),
    ],
    ids=["same", "below", "sibling-prefix", "above", "empty-scope"],
)
def test_is_within(scope: str, key: str, inside: bool) -> None:
    assert is_within(scope, key) is inside


def test_workspace_names_are_checked_like_mlflow_but_strictly() -> None:
    assert [
        is_valid_workspace_name(n) for n in ("default", "team-a", "a1", "team-a\n", "Team-a", "a")
    ] == [True, True, True, False, False, False]
    assert [
        reads_as_workspaces(s)
        for s in ("workspaces", "WorkSpaces", "w%6Frkspaces", "w%256Frkspaces", "work")
    ] == [True, True, True, True, False]


# -- properties ------------------------------------------------------------------------
_TRICKY = st.sampled_from(
    [
        "..",
        ".",
        "",
        "workspaces",
        "Workspaces",
        "team-a",
        "team-b",
        "%2e%2e",
        "%252e%252e",
        "\uff0e\uff0e",
        "a\\b",
        "x\n",
        "%2f",
        "default",
        "\u2025",
        "%77orkspaces",
        "TEAM-B",
    ]
)
_SEGMENT = st.one_of(_TRICKY, st.text(max_size=12))
_PATHS = st.lists(_SEGMENT, max_size=8).map("/".join)


@given(_PATHS)
@example("a/%252e%252e/b")
@example("\uff0e\uff0e/workspaces/team-b")
def test_normalize_is_safe_and_idempotent(path: str) -> None:
    try:
        clean = normalize(path)
    except PathError:
        return
    segments = clean.split("/") if clean else []
    assert "" not in segments
    assert ".." not in segments
    assert "." not in segments
    assert "\\" not in clean
    assert not any(ch in clean for ch in "\n\r\x00")
    assert normalize(clean) == clean


@given(_PATHS, st.sampled_from(["team-a", "team-b", "default"]))
def test_an_accepted_path_belongs_to_exactly_the_workspace_it_names(path: str, active: str) -> None:
    try:
        logical = split_under("", normalize(path))
    except PathError:
        return
    if logical.workspace is not None:
        assert logical.root == ""
        assert normalize(path).startswith(f"workspaces/{logical.workspace}")
    else:
        assert not any(reads_as_workspaces(s) for s in logical.root.split("/"))
    if logical.owner == active:
        check_owner(logical, active, operation="read")
    else:
        with pytest.raises(OwnershipError):
            check_owner(logical, active, operation="read")
