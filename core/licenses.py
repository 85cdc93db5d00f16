"""Every installed package's licence, from its own metadata, checked against the allowlist in
``licenses.toml``. ``make licenses`` (and CI) runs it; it exits 1 naming each package whose
licence is not allowed, and prints the count by licence.

A package's licence is its ``License-Expression`` (an SPDX expression, PEP 639) when it has one;
otherwise its trove classifiers, read as SPDX ids; otherwise its ``License`` field when that is a
name rather than the whole text. An expression is allowed when one of its ``OR`` alternatives has
every ``AND`` part allowed. A licence that is never allowed (BSL, the Elastic licence, AGPL,
SSPL) fails even when a package's own entry would admit it. What metadata cannot settle (no
licence, an ambiguous classifier) is decided by hand in ``licenses.toml``'s ``[packages]``, each
with its reason.

    python -m core.licenses [--allowlist licenses.toml]
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

# Trove classifiers (their last part) as SPDX ids.
CLASSIFIERS: dict[str, str] = {
    "MIT License": "MIT",
    "MIT No Attribution License (MIT-0)": "MIT-0",
    "BSD License": "BSD-3-Clause",
    "Apache Software License": "Apache-2.0",
    "ISC License (ISCL)": "ISC",
    "Python Software Foundation License": "PSF-2.0",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Mozilla Public License 1.1 (MPL 1.1)": "MPL-1.1",
    "Historical Permission Notice and Disclaimer (HPND)": "HPND",
    "Zope Public License": "ZPL-2.1",
    "The Unlicense (Unlicense)": "Unlicense",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "Server Side Public License (SSPL)": "SSPL-1.0",
}
# Common free-text ``License`` fields, as SPDX ids.
NAMES: dict[str, str] = {
    "mit": "MIT",
    "mit license": "MIT",
    "bsd": "BSD-3-Clause",
    "new bsd": "BSD-3-Clause",
    "bsd license": "BSD-3-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "3-clause bsd license": "BSD-3-Clause",
    "apache 2.0": "Apache-2.0",
    "apache-2.0": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "apache 2.0 license": "Apache-2.0",
    "isc license": "ISC",
    "mpl-2.0": "MPL-2.0",
    "psf-2.0": "PSF-2.0",
    "hpnd": "HPND",
    "zpl-2.1": "ZPL-2.1",
}
NEVER = re.compile(r"^(BUSL|BSL-1|Elastic|AGPL|SSPL)", re.IGNORECASE)
UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Found:
    name: str
    version: str
    licence: str  # an SPDX expression, or UNKNOWN
    source: str  # License-Expression, classifiers, License, or the allowlist's packages


def from_metadata(
    expression: str | None, classifiers: Iterable[str], field: str | None
) -> tuple[str, str]:
    """(the licence as an SPDX expression, where it was read), or UNKNOWN. Pure."""
    if expression and expression.strip():
        return expression.strip(), "License-Expression"
    ids = sorted(
        {
            CLASSIFIERS.get(c.split(" :: ")[-1], UNKNOWN)
            for c in classifiers
            if c.startswith("License ::") and c.split(" :: ")[-1] != "OSI Approved"
        }
    )
    if ids and UNKNOWN not in ids:
        # Several classifiers: the package may be used under any of them.
        return " OR ".join(ids), "classifiers"
    text = (field or "").strip()
    if text and len(text) <= 80 and "\n" not in text:
        named = NAMES.get(text.lower())
        if named is not None:
            return named, "License"
        try:
            parse(text)
        except NotAnExpression:
            pass
        else:
            return text, "License"
    return UNKNOWN, "none"


TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9.+\-]+)")
SPDX_ID = re.compile(r"^[A-Za-z0-9.\-]+\+?$")


class NotAnExpression(ValueError):
    pass


def _tokens(text: str) -> list[str]:
    found, at = [], 0
    while at < len(text):
        match = TOKEN.match(text, at)
        if match is None:
            if text[at:].strip():
                raise NotAnExpression(text)
            break
        found.append(match.group(1))
        at = match.end()
    return found


def parse(expression: str) -> object:
    """An SPDX licence expression as a tree: ("OR", [...]), ("AND", [...]) or a licence id (with
    its ``WITH`` exception). AND binds tighter than OR; parentheses group. Raises
    ``NotAnExpression`` for text that is not one ("GPLv2 with linking exception"). Pure."""
    tokens = _tokens(expression)
    at = 0

    def peek() -> str | None:
        return tokens[at] if at < len(tokens) else None

    def take() -> str:
        nonlocal at
        if at >= len(tokens):
            raise NotAnExpression(expression)
        at += 1
        return tokens[at - 1]

    def either() -> object:
        parts = [both()]
        while peek() == "OR":
            take()
            parts.append(both())
        return parts[0] if len(parts) == 1 else ("OR", parts)

    def both() -> object:
        parts = [one()]
        while peek() == "AND":
            take()
            parts.append(one())
        return parts[0] if len(parts) == 1 else ("AND", parts)

    def one() -> object:
        word = take()
        if word == "(":
            inner = either()
            if take() != ")":
                raise NotAnExpression(expression)
            return inner
        if word in {"AND", "OR", "WITH", ")"} or not SPDX_ID.match(word):
            raise NotAnExpression(expression)
        if peek() == "WITH":
            take()
            return f"{word} WITH {take()}"
        return word

    tree = either()
    if at != len(tokens):
        raise NotAnExpression(expression)
    return tree


def allowed(expression: str, allow: set[str]) -> bool:
    """Whether ``expression`` may be used under the allowed licences: an OR needs one allowed
    alternative, an AND every part; a licence that is never allowed never is. Pure."""

    def ok(node: object) -> bool:
        if isinstance(node, str):
            return not NEVER.match(node) and node in allow
        assert isinstance(node, tuple)
        kind: str = node[0]
        parts: list[object] = node[1]
        return any(ok(p) for p in parts) if kind == "OR" else all(ok(p) for p in parts)

    try:
        return ok(parse(expression))
    except NotAnExpression:
        return False


def installed() -> list[tuple[str, str, str | None, list[str], str | None]]:
    found = []
    for dist in metadata.distributions():
        meta: Any = dist.metadata  # an email.message.Message: it has .get
        found.append(
            (
                meta["Name"],
                meta["Version"],
                meta.get("License-Expression"),
                meta.get_all("Classifier") or [],
                meta.get("License"),
            )
        )
    return sorted(found, key=lambda row: row[0].lower())


def check(
    packages: Iterable[tuple[str, str, str | None, list[str], str | None]],
    allow: set[str],
    decided: Mapping[str, Mapping[str, str]],
) -> tuple[list[Found], list[Found]]:
    """(every package with its licence, the ones not allowed). Pure."""
    every, refused = [], []
    for name, version, expression, classifiers, field in packages:
        licence, source = from_metadata(expression, classifiers, field)
        entry = decided.get(name.lower())
        if entry is not None:
            licence, source = entry["licence"], f"licenses.toml: {entry['reason']}"
        found = Found(name, version, licence, source)
        every.append(found)
        if licence == UNKNOWN or not allowed(licence, allow):
            refused.append(found)
    return every, refused


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--allowlist", type=Path, default=Path("licenses.toml"))
    args = parser.parse_args(argv)
    config = tomllib.loads(args.allowlist.read_text())
    allow = set(config["allow"]["licenses"])
    decided = {k.lower(): v for k, v in config.get("packages", {}).items()}
    every, refused = check(installed(), allow, decided)
    counts = Counter(f.licence for f in every)
    print(f"{len(every)} packages installed, by licence:")
    for licence, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        print(f"  {n:4d}  {licence}")
    by_hand = [f for f in every if f.source.startswith("licenses.toml")]
    if by_hand:
        print(f"{len(by_hand)} decided by hand in {args.allowlist}:")
        for f in by_hand:
            print(f"  {f.name} {f.version}: {f.licence} ({f.source.split(': ', 1)[1]})")
    if refused:
        print(f"{len(refused)} not allowed:", file=sys.stderr)
        for f in refused:
            print(f"  {f.name} {f.version}: {f.licence} (from {f.source})", file=sys.stderr)
        return 1
    print("every licence is on the allowlist")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
