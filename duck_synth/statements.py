"""Splitting SQL text into statements, so each is rewritten against the catalog as it is then."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_DOLLAR_QUOTE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass
class Split:
    statements: list[str] = field(default_factory=list)  # complete, without the ';'
    rest: str = ""  # text after the last ';' (an unfinished statement, or blank)
    rest_has_code: bool = False  # rest holds more than whitespace and comments


def split_statements(text: str) -> Split:
    """Split on ``;`` outside quotes, dollar quotes and comments; drop comment-only statements."""
    split = Split()
    start, i, n, has_code = 0, 0, len(text), False
    while i < n:
        c = text[i]
        if c in "'\"":
            escapes = (
                c == "'" and i > 0 and text[i - 1] in "eE" and (i < 2 or not _word(text[i - 2]))
            )
            i = _end_of_quote(text, i, c, escapes)
            has_code = True
        elif text.startswith("--", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline + 1
        elif text.startswith("/*", i):
            close = text.find("*/", i + 2)
            i = n if close < 0 else close + 2
        elif (
            c == "$" and (i == 0 or not _word(text[i - 1])) and (m := _DOLLAR_QUOTE.match(text, i))
        ):
            close = text.find(m.group(0), m.end())
            i = n if close < 0 else close + len(m.group(0))
            has_code = True
        elif c == ";":
            if has_code:
                split.statements.append(text[start:i].strip())
            start, i, has_code = i + 1, i + 1, False
        else:
            has_code = has_code or not c.isspace()
            i += 1
    split.rest = text[start:]
    split.rest_has_code = has_code
    return split


def _word(c: str) -> bool:
    return c.isalnum() or c == "_"


def _end_of_quote(text: str, i: int, quote: str, escapes: bool) -> int:
    """Index after the quote that closes the one at ``i`` (len(text) when it is not closed)."""
    j = i + 1
    while j < len(text):
        if escapes and text[j] == "\\":
            j += 2
        elif text[j] == quote:
            if text.startswith(quote, j + 1):  # '' or "" inside the quotes
                j += 2
            else:
                return j + 1
        else:
            j += 1
    return len(text)


def script_statements(text: str) -> list[str]:
    """Every statement of a script, the last one with or without its ';'."""
    split = split_statements(text)
    return split.statements + ([split.rest.strip()] if split.rest_has_code else [])
