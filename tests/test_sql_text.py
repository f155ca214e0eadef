"""No value becomes SQL text by formatting: every SQL string handed to DuckDB is a literal, or
is built from literals and the sqltext helpers (quoting, DuckDB-parsed types, checked queries).

The scan reads duck_synth's source with ``ast``; each place that runs SQL made otherwise is
listed below with the reason it is safe. A new one fails this test until it is made safe or
listed with its reason.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "duck_synth"
RUNS_SQL = {"execute", "executemany", "sql", "query"}
# functions whose result is SQL safe to run or nest: quoting, DuckDB-parsed types, queries
# checked by sqltext.query (exactly one query, under the caller's rights)
SAFE_BUILDERS = {
    "quote_identifier",
    "quote_literal",
    "sql_literal",
    "duck_type",
    "cast",
    "q",  # quote_identifier, imported as q
    "read_source",
    "select_sql",
    "cast_sql",
}

EXCEPTIONS = {
    # user SQL, run as the user's own statement (checked by access.py on a server)
    ("connection.py", "_run"): "the caller's own statement, after the rewrite",
    ("connection.py", "_stream"): "the caller's own statement, after the rewrite",
    ("connection.py", "execute"): "session.execute is session.sql",
    ("connection.py", "_standalone_append"): "arguments written back by sqlglot from the "
    "caller's own parsed statement",
    ("interface.py", "train"): "a call built from sql_literal values and checked keyword names",
    ("interface.py", "generate"): "a call built from sql_literal values and checked keyword names",
    ("interface.py", "infer"): "a call built from sql_literal values and checked keyword names",
    ("cli.py", "_execute"): "the user's statement, run through session.sql",
    ("remote.py", "_execute"): "the remote user's statement, sent to the server",
    ("remote.py", "explain"): "the remote user's statement, sent to the server",
    ("streaming.py", "generation_stream"): "written back by sqlglot from the caller's parsed "
    "statement",
    ("streaming.py", "_run_on"): "the rewritten statement of the caller",
    ("serve/flight_updates.py", "_update"): "the client's statement, checked by access.py, with "
    "bound values as sql_literal literals",
    ("workflows.py", "create_workflow"): "the macro's signature: quoted parameter names "
    "(identifiers) with sql_literal defaults",
    ("serve/flight_queries.py", "_in_transaction"): "the client's statement in its transaction, "
    "checked by access.py",
    ("serve/ingest.py", "ingest"): "a quoted table name and the generated name of a "
    "registered Arrow table",
    ("serve/ingest.py", "_exists"): "fixed conditions; values bound as parameters",
    ("serve/metadata.py", "dataset_schema"): "one checked SELECT over base tables, its "
    "placeholders bound as NULL literals",
    ("serve/metadata.py", "sql_info"): "queries of the module's LISTED_INFO table",
    ("serve/transactions.py", "_close"): "COMMIT or ROLLBACK, chosen by the module",
    ("database.py", "_open"): "the database path by quote_literal; READ_ONLY a fixed option",
    # SQL shipped in the package
    ("catalog.py", "install"): "the migrations and macros shipped in sql/",
    ("catalog.py", "column_lookups"): "two constant catalog listings; the name's parts are "
    "bound as values",
    ("serve/quack.py", "load_extensions"): "LOAD statements of the shipped extension files, "
    "quoted by quote_literal",
    # internal relations: made by read_source/sqltext.query or by the module itself
    ("generate_into.py", "_start"): "the table name quoted by quote_identifier, types by duck_type",
    ("generate_into.py", "_undo"): "the table (or parts view) name quoted by quote_identifier",
    (
        "generate_into.py",
        "_write_batch",
    ): "quoted table name; the select is cast_sql over a registered batch; a parts view reads "
    "a folder path quoted by quote_literal (parts.py)",
    ("generate_into.py", "_check_columns"): "quoted table name",
    ("generate_into.py", "_remember_unique"): "quoted table and column names",
    ("pipelines/runner.py", "_validated"): "a SELECT sqlglot builds from the validations' "
    "parsed predicates over the registered rows",
    ("evaluate/__init__.py", "_fidelity_rows"): "temp table names made by the module",
    ("evaluate/codes.py", "prepare_codes"): "temp table names made by the module; items quoted",
    ("evaluate/columns.py", "prepare"): "temp table names made by the module over a "
    "read_source relation",
    ("evaluate/columns.py", "side_stats"): "temp table name; items quoted",
    ("evaluate/columns.py", "materialized"): "a read_source relation into a temp table named "
    "by the module",
    ("evaluate/fidelity.py", "_per_column"): "built from temp table names and quoted columns",
    ("evaluate/pairs.py", "contingency_rows"): "built from temp table names and quoted columns",
    ("evaluate/pairs.py", "information_rows"): "built from temp table names and quoted columns",
    ("evaluate/pairs.py", "_correlations"): "temp table name; items quoted",
    ("evaluate/privacy.py", "privacy_metrics"): "temp table names made by the module",
    ("evaluate/privacy.py", "sample_frame"): "built from temp table names and quoted columns",
    ("evaluate/privacy.py", "_metrics"): "temp table names made by the module",
    ("evaluate/privacy.py", "exact_copy_rate"): "temp table names; quoted columns",
    ("evaluate/relational.py", "_correlations"): "read_source relations; quoted columns and "
    "keys, aliases made by the module",
    ("evaluate/report.py", "report"): "a read_source relation",
    ("evaluate/text.py", "text_columns"): "a temp table name and its slot names (c0, c1, ...)",
    ("evaluate/text.py", "text_rows"): "temp table names made by the module; slot names",
    ("evaluate/report_data.py", "histogram"): "read_source relations; quoted columns",
    ("evaluate/report_data.py", "categories"): "read_source relations; quoted columns",
    ("evaluate/report_data.py", "_cramers_v"): "a read_source relation; quoted columns",
    ("evaluate/report_data.py", "associations"): "a read_source relation; quoted columns",
    ("evaluate/report_metrics.py", "_ks_complement"): "read_source relations; quoted columns",
    ("evaluate/report_metrics.py", "_tv_complement"): "read_source relations; quoted columns",
    ("evaluate/sessions.py", "_step_rows"): "temp table names; quoted columns",
    ("evaluate/sessions.py", "_band_counts"): "temp table names; quoted columns; band numbers "
    "by sql_literal",
    ("evaluate/utility.py", "utility_metrics"): "temp table names made by the module",
    ("evaluate/validate.py", "run_checks"): "a read_source relation; aggregates over quoted "
    "columns with quote_literal / duck_type values",
    ("evaluate/validate.py", "repeated_value"): "a read_source relation; quoted column",
    ("generate.py", "_matching_training_rows"): "a read_source relation; the filter written "
    "back by sqlglot after sqltext.predicate checked it",
    ("distributed/blocks.py", "plan_in_blocks"): "a module constant's table made from the "
    "training read (shapes/base.read_sql: quoted names, read types, a relation from read_source)",
    ("shapes/rows.py", "screen"): "cast_sql over the registered batch, the filter written back by "
    "sqlglot, in a connection without file access",
    ("recommend.py", "shape_of"): "a read_source relation; quoted columns",
    ("resample.py", "resample"): "a read_source relation; the condition written back by sqlglot",
    ("resample.py", "_holds_for"): "the rule written back by sqlglot over a registered table",
    ("sessions.py", "_varying"): "a read_source relation; quoted columns",
    ("sources.py", "describe"): "a read_source relation",
    ("train.py", "train"): "a read_source relation; read_sql quotes names and parses types",
    ("train.py", "column_facts"): "a read_source relation; quoted columns",
    ("relations.py", "_check"): "a read_source relation; key columns quote_identifier'd",
    ("relations.py", "key_counts"): "read_source relations; key columns quote_identifier'd",
    ("relations.py", "degrees"): "read_source relations; key columns quote_identifier'd",
    ("relational/frames.py", "_agreement"): (
        "a table's kept rows (read_source relations) grouped by its quote_identifier'd keys"
    ),
    ("relational/writing.py", "_insert"): (
        "INSERT of a registered Arrow table into a quote_identifier'd table, columns quoted"
    ),
    ("relational/writing.py", "_write_parents"): (
        "CREATE TABLE from _create_sql (names quoted, types checked and rendered by "
        "sqltext.duck_type); DROP of quote_identifier'd tables"
    ),
    ("relational/generation.py", "_kept"): (
        "a table's filter compiled by conditions.compile_filter (parsed, columns checked), run "
        "in the sandbox on the drawn batch"
    ),
    ("relational/training.py", "_plans"): (
        "a table's frame (relational/frames.py): read_source relations, every column "
        "quote_identifier'd"
    ),
    ("subset.py", "_run"): "the module's statements: read_source relations, temp table and key "
    "names by quote_identifier, filters written back by sqlglot after sqltext.predicate; "
    "values bound as parameters",
    ("subset.py", "counts"): "temp table names by quote_identifier",
    ("subset.py", "drop"): "temp table names by quote_identifier",
    ("shapes/sessions.py", "read_sessions"): "a read_source relation; quoted columns",
    ("shapes/table.py", "plan"): "a read_source relation; read_sql quotes names and parses types",
    ("continued.py", "plan"): "a read_source relation; read_sql quotes names and parses types",
    ("train.py", "check_constraints"): "a read_source relation; the constraint written back "
    "by sqlglot after sqltext.predicate checked it",
    ("serve/metadata.py", "db_schemas"): "fixed conditions; values bound as parameters",
    ("serve/metadata.py", "tables"): "fixed conditions; values bound as parameters",
    ("serve/metadata.py", "table_schema"): "quoted names, types by duck_type",
}


def _builder(call: ast.Call) -> bool:
    function = call.func
    if isinstance(function, ast.Attribute):
        if isinstance(function.value, ast.Name) and function.value.id == "sqltext":
            return True  # sqltext.query / sqltext.cast / ...
        return function.attr in SAFE_BUILDERS
    return isinstance(function, ast.Name) and function.id in SAFE_BUILDERS


def _safe(node: ast.AST, constants: frozenset = frozenset()) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return all(
            isinstance(part, ast.Constant)
            or (isinstance(part, ast.FormattedValue) and _safe_value(part.value, constants))
            for part in node.values
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _safe(node.left, constants) and _safe(node.right, constants)
    if isinstance(node, ast.Name):
        return node.id in constants
    return isinstance(node, ast.Call) and _builder(node)


def _safe_value(node: ast.AST, constants: frozenset) -> bool:
    return (
        isinstance(node, ast.Constant)
        or (isinstance(node, ast.Name) and node.id in constants)
        or (isinstance(node, ast.Call) and _builder(node))
    )


def _module_constants(tree: ast.Module) -> frozenset:
    """UPPER_CASE names the module assigns once, to a string literal: SQL it wrote itself."""
    assigned: dict[str, list] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, []).append(node.value)
    return frozenset(
        name
        for name, values in assigned.items()
        if name.isupper() and len(values) == 1 and _safe(values[0])
    )


def sql_calls_built_by_formatting() -> list[tuple[str, str, int, str]]:
    """(file, function, line, SQL expression) of each call running SQL that is not safe."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text())
        constants = _module_constants(tree)
        owner = {}
        for function in ast.walk(tree):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(function):
                    owner.setdefault(id(node), function.name)
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in RUNS_SQL
                and node.args
            ):
                continue
            receiver = node.func.value
            if isinstance(receiver, ast.Name) and receiver.id == "sqltext":
                continue  # the checker itself
            argument = node.args[0]
            if (
                node.func.attr == "sql"
                and isinstance(argument, ast.Name)
                and argument.id
                in (
                    "DUCKDB",
                    "dialect",
                )
            ):
                continue  # sqlglot writing a tree back, not running SQL
            if not _safe(argument, constants):
                function = owner.get(id(node), "<module>")
                found.append((relative, function, node.lineno, ast.unparse(argument)[:80]))
    return found


def test_no_sql_is_built_by_formatting_outside_the_listed_exceptions():
    unlisted = [
        f"{file}:{line} in {function}(): {text}"
        for file, function, line, text in sql_calls_built_by_formatting()
        if (file, function) not in EXCEPTIONS
    ]
    assert not unlisted, "SQL built by formatting (use sqltext, or list it):\n" + "\n".join(
        unlisted
    )


def test_every_listed_exception_is_still_needed():
    used = {(file, function) for file, function, _, _ in sql_calls_built_by_formatting()}
    stale = sorted(set(EXCEPTIONS) - used)
    assert not stale, f"listed but no longer needed: {stale}"


@pytest.mark.parametrize(
    "code, safe",
    [
        ("con.execute('SELECT 1')", True),
        ("con.execute(f'SELECT * FROM {sqltext.quote_identifier(name)}')", True),
        ("con.execute(f'SELECT * FROM {name}')", False),
        ("con.execute('SELECT ' + value)", False),
        ("con.execute(text)", False),
        ("con.execute(f'CAST(x AS {sqltext.duck_type(t)})')", True),
        ("con.execute(f'SELECT {NOW}')", True),
        ("con.execute(f'SELECT {LATER}')", False),
    ],
)
def test_the_scan_tells_formatting_from_helpers(code, safe):
    call = ast.parse(code).body[0].value
    assert _safe(call.args[0], frozenset({"NOW"})) is safe
