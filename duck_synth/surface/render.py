"""Rendering the surface: sql/macros.sql (the macros over the UDFs, after a prelude) and the
README's reference table."""

from __future__ import annotations

import textwrap
from dataclasses import MISSING, fields
from pathlib import Path

from .function import Function

PRELUDE = """\
-- The SQL surface of duck_synth: thin macros over Python UDFs.
-- Rendered from duck_synth/surface/ (python -m duck_synth.surface); edit it there.
-- Each UDF does its work at bind time and returns the SQL that reads its result
-- (a Parquet spool file with the right column types), which query() then runs.

-- synth_call('synth_train', [arguments as VARCHAR]) -> the SQL calling that UDF with those
-- arguments as literals. The UDFs live in the Python process running duck_synth; query() binds
-- the text only when it runs it, so elsewhere (the plain duckdb CLI, another language) a macro
-- fails with this one line instead of "Scalar Function ... does not exist".
CREATE OR REPLACE MACRO synth_literal(value) AS
    coalesce('''' || replace(value, '''', '''''') || '''', 'NULL');
CREATE OR REPLACE MACRO synth_call(udf, arguments) AS
    CASE WHEN current_setting('duckdb_api') LIKE 'python%'
         THEN 'FROM query(' || udf || '('
              || array_to_string(list_transform(arguments, a -> synth_literal(a)), ', ') || '))'
         ELSE error('this database holds duck_synth models; its functions run in duck_synth: '
                    || 'open it with `duck-synth FILE` (a shell), or serve it with '
                    || '`duck-synth serve FILE` and ATTACH it over Quack') END;
"""


# -- rendering sql/macros.sql ---------------------------------------------------------------
def _comment(text: str) -> str:
    return "\n".join(textwrap.wrap(text, 97, initial_indent="-- ", subsequent_indent="-- "))


def _wrapped(items: list[str], indent: str = "    ", width: int = 100) -> str:
    """``items`` comma-separated, as many to a line as fit (never split inside one)."""
    lines, line = [], ""
    for item in items:
        longer = f"{line}, {item}" if line else item
        if line and len(indent) + len(longer) + 1 > width:
            lines.append(f"{indent}{line},")
            line = item
        else:
            line = longer
    lines.append(indent + line)
    return "\n".join(lines)


def _option_value(function: Function, name: str) -> str:
    aliases = [a for a, to in function.aliases.items() if to == name]
    value = _quoted(name)
    if aliases:
        value = f"coalesce({value}, {', '.join(_quoted(a) for a in aliases)})"
    as_text = next(f for f in fields(function.options) if f.name == name).metadata.get("as_text")
    return f"CAST({value} AS VARCHAR)" if as_text else value


def _quoted(name: str) -> str:
    return (
        f'"{name}"' if name in ("where", "table", "end", "limit") else name
    )  # reserved in DuckDB's parser


def _json(function: Function) -> str:
    """to_json({...}) of the named arguments, aliases folded into the option they fill."""
    names = [n for n in function.named() if n not in function.aliases]
    pairs = [f"'{n}': {_option_value(function, n)}" for n in names]
    return "to_json({\n" + _wrapped(pairs) + "\n})"


def _signature(function: Function) -> str:
    named = [f"{_quoted(n)} := NULL" for n in function.named()]
    inline = ", ".join([*function.required, *named])
    if len(inline) <= 60:
        return inline
    required = f"    {', '.join(function.required)},\n" if function.required else ""
    return f"\n{required}{_wrapped(named)}\n"


def _render(function: Function) -> str:
    head = _comment(function.doc) + "\n"
    if function.body is not None:
        kind = "" if function.scalar else " TABLE"
        signature = f"{function.name}({function.parameters})"
        return f"{head}CREATE OR REPLACE MACRO {signature} AS{kind}\n{function.body};\n"
    values = [_required_value(function, a) for a in function.required]
    out = head
    if function.options_macro:
        named = [f"{_quoted(n)} := NULL" for n in function.named()]
        out += (
            f"CREATE OR REPLACE MACRO {function.name}_options(\n{_wrapped(named)}\n) AS "
            f"{_json(function)};\n"
        )
        passed = [f"{_quoted(n)} := {_quoted(n)}" for n in function.named()]
        values.append(f"CAST({function.name}_options(\n{_wrapped(passed)}\n) AS VARCHAR)")
    elif function.options:
        values.append(f"CAST({_json(function)} AS VARCHAR)")
    call = f"synth_call('{function.udf}', [{', '.join(values)}])"
    return (
        f"{out}CREATE OR REPLACE MACRO {function.name}({_signature(function)}) AS TABLE\n"
        f"    FROM query({call});\n"
    )


def _required_value(function: Function, name: str) -> str:
    """A required argument as text; one that may be a list (['planes', 'flights']) as JSON."""
    if name in function.structs:
        return f"CAST(to_json({name}) AS VARCHAR)"
    if name not in function.lists:
        return f"CAST({name} AS VARCHAR)"
    return (
        f"CASE WHEN typeof({name}) LIKE '%[]' THEN CAST(to_json({name}) AS VARCHAR) "
        f"ELSE CAST({name} AS VARCHAR) END"
    )


def render_macros(functions: tuple[Function, ...]) -> str:
    """The macros of ``functions`` after the prelude (a planned one has none)."""
    return PRELUDE + "".join("\n" + _render(f) for f in functions if not f.planned)


MACROS_FILE = Path(__file__).resolve().parents[2] / "sql" / "macros.sql"


# -- the README's reference table -----------------------------------------------------------
def render_reference(builtin: tuple[Function, ...], planned: tuple[Function, ...]) -> str:
    """Markdown: each function, whether it reads or writes, its arguments (named ones with their
    defaults); then the planned ones, which are not callable yet."""
    rows = ["| function | role | arguments |", "| --- | --- | --- |"]
    for f in builtin:
        if f.body is not None:
            arguments = [f.parameters] if f.parameters else []
        else:
            arguments = [*f.required, *(_named_with_default(f, n) for n in f.named())]
        listed = ", ".join(f"`{a}`" for a in arguments)
        rows.append(f"| `{f.name}` | {f.role} | {listed} |")
    if not planned:
        return "\n".join(rows)
    rows += ["", PLANNED_HEADING, "", "| function | role | planned in | what |"]
    rows.append("| --- | --- | --- | --- |")
    for f in planned:
        what = f.doc.replace("|", "\\|")  # a pipe would end the cell
        rows.append(f"| `{f.name}` | {f.role} | {f.planned} | {what} |")
    return "\n".join(rows)


PLANNED_HEADING = (
    "Planned, not callable yet: declared so that their access rule (a read-only token is refused "
    "the writing ones) stands before their code does."
)


def _named_with_default(function: Function, name: str) -> str:
    if name in function.aliases:
        return f"{name} =>"
    default = next(f for f in fields(function.options) if f.name == name).default
    if default is None or default is MISSING:
        return f"{name} =>"
    shown = str(default).lower() if isinstance(default, bool) else repr(default)
    return f"{name} => {shown}"
