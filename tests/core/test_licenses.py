"""``make licenses``: licences read from package metadata, SPDX expressions evaluated with their
precedence, licences that are never allowed refused whatever the allowlist says, and the
installed environment checked against the repository's own allowlist."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.licenses import NotAnExpression, allowed, check, from_metadata, main, parse

ROOT = Path(__file__).resolve().parents[2]


def test_an_expression_is_parsed_with_and_binding_tighter_than_or() -> None:
    assert parse("MPL-2.0 AND (Apache-2.0 OR MIT)") == (
        "AND",
        ["MPL-2.0", ("OR", ["Apache-2.0", "MIT"])],
    )
    assert parse("MIT OR Apache-2.0 AND BSD-2-Clause") == (
        "OR",
        ["MIT", ("AND", ["Apache-2.0", "BSD-2-Clause"])],
    )
    assert parse("GPL-2.0-only WITH Linking-exception") == "GPL-2.0-only WITH Linking-exception"
    for text in ("GPLv2 with linking exception", "MIT AND", "(MIT", "MIT)", "GPLv2 | EPLv1"):
        with pytest.raises(NotAnExpression):
            parse(text)


def test_an_alternative_must_be_wholly_allowed_and_some_licences_never_are() -> None:
    allow = {"MIT", "MPL-2.0", "Apache-2.0", "AGPL-3.0-only"}
    assert allowed("MPL-2.0 AND (Apache-2.0 OR MIT)", allow)
    assert allowed("Apache-2.0 OR GPL-2.0-or-later", allow)
    assert not allowed("MIT AND GPL-3.0-only", allow)
    assert not allowed("(MIT OR GPL-3.0-only) AND GPL-3.0-only", allow)
    assert not allowed("AGPL-3.0-only", allow), "never allowed, even when listed"
    assert not allowed("BUSL-1.1 OR SSPL-1.0", allow)
    assert allowed("SSPL-1.0 OR MIT", allow), "a package offered under MIT too is fine"
    assert not allowed("Elastic-2.0", {"Elastic-2.0"})
    assert not allowed("not an expression", allow)


def test_the_licence_is_read_from_the_expression_then_classifiers_then_the_field() -> None:
    mit = ["License :: OSI Approved :: MIT License"]
    assert from_metadata("Apache-2.0", mit, "BSD") == ("Apache-2.0", "License-Expression")
    assert from_metadata(None, mit, "BSD") == ("MIT", "classifiers")
    both = [*mit, "License :: OSI Approved :: Apache Software License"]
    assert from_metadata(None, both, None) == ("Apache-2.0 OR MIT", "classifiers")
    osi = ["License :: OSI Approved"]
    assert from_metadata(None, osi, "EPL-2.0 OR GPL-2.0-or-later") == (
        "EPL-2.0 OR GPL-2.0-or-later",
        "License",
    )
    assert from_metadata(None, osi, None) == ("UNKNOWN", "none")
    assert from_metadata(None, [], "GPLv2 with linking exception") == ("UNKNOWN", "none")
    assert from_metadata(None, [], "Copyright (c) 2005\nRedistribution ...")[0] == "UNKNOWN"


def test_a_package_decided_by_hand_is_taken_as_decided_and_the_rest_are_refused() -> None:
    packages = [
        ("quiet", "1.0", None, [], None),
        ("copyleft", "2.0", "AGPL-3.0-only", [], None),
        ("plain", "3.0", None, ["License :: OSI Approved :: MIT License"], None),
    ]
    decided = {"quiet": {"licence": "MIT", "reason": "its LICENSE file"}}
    every, refused = check(packages, {"MIT"}, decided)
    assert [f.licence for f in every] == ["MIT", "AGPL-3.0-only", "MIT"]
    assert [f.name for f in refused] == ["copyleft"]
    _every, refused = check(packages, {"MIT"}, {})
    assert [f.name for f in refused] == ["quiet", "copyleft"]


def test_every_installed_package_is_on_the_repositorys_allowlist(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--allowlist", str(ROOT / "licenses.toml")]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "every licence is on the allowlist" in out and "MIT" in out
