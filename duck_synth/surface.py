"""The SQL surface, declared once: every function duck_synth adds to DuckDB, its arguments, the
Python UDF behind it and whether it reads or writes.

Everything else derives from ``BUILTIN`` (and what plugins ``register``): sql/macros.sql is rendered from it (``python -m
duck_synth.surface`` writes the file; tests/test_surface.py fails when the checked-in file
differs), the UDFs actions.py registers, the statements duck_synth runs itself
(``acting_pattern``), the read-only rule of access.py (``reading`` / ``writing``), the arguments
the rewrite accepts, and the README's reference table. Named arguments come from the option
dataclasses of options.py, where their types and bounds are checked.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from . import options
from .errors import SynthError

READS, WRITES = "reads", "writes"


@dataclass(frozen=True)
class Function:
    """One SQL function. A table function with ``udf`` passes its required arguments and (with
    ``options``) one JSON object of its named arguments to that UDF through ``synth_call``; one
    with ``body`` is plain SQL (catalog views, keyed transforms) and needs no Python."""

    name: str
    role: str  # READS or WRITES: what a read-only token may call
    doc: str  # the comment above the macro in sql/macros.sql
    required: tuple[str, ...] = ()
    options: type | None = None  # the dataclass of the named arguments (options.py)
    without: tuple[str, ...] = ()  # fields of ``options`` this function does not take
    aliases: dict[str, str] = field(default_factory=dict)  # SQL name -> option it fills
    udf: str | None = None
    body: str | None = None  # SQL of a plain macro (a table macro unless ``scalar``)
    scalar: bool = False
    options_macro: bool = False  # also render <name>_options(...) -> the JSON (streaming.py)
    parameters: str = ""  # the signature of a plain macro

    def named(self) -> list[str]:
        """The named arguments, in the options' order, aliases after the option they fill."""
        names = []
        for f in fields(self.options) if self.options else ():
            if f.name not in self.without:
                names.append(f.name)
                names += [alias for alias, to in self.aliases.items() if to == f.name]
        return names

    def udf_arity(self) -> int:
        return len(self.required) + (1 if self.options else 0)


PRELUDE = """\
-- The SQL surface of duck_synth: thin macros over Python UDFs.
-- Rendered from duck_synth/surface.py (python -m duck_synth.surface); edit it there.
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

BUILTIN: tuple[Function, ...] = (
    Function(
        "train",
        WRITES,
        "train('name', 'table or query', ...) -> one summary row. With session_key (and "
        "order_by, metadata) the rows are the steps of sessions: see duck_synth/sessions.py.",
        required=("name", "source"),
        options=options.TrainOptions,
        udf="synth_train",
    ),
    Function(
        "recommend",
        READS,
        "recommend('table or query' [, session_key]) -> the methods ranked for the data's "
        "shape: rank, method, applicable, reason, shape. train(..., method => 'auto') takes the "
        "first.",
        required=("source",),
        options=options.RecommendOptions,
        udf="synth_recommend",
    ),
    Function(
        "generate",
        READS,
        "generate('model' | 'model@version', ...) -> synthetic rows with the training columns' "
        'types. "conditions" takes PostAmplify\'s JSON conditions (\'{"eq": {"fraud": 1}}\', '
        '...), ANDed to filter. "filter" is the pushed-down predicate (WHERE is a reserved word '
        'in DuckDB\'s parser; the quoted "where" is accepted as the same argument). Controls '
        "(duck_synth/controls.py): constraints (row rules, ANDed to the model's own), equalize "
        "=> 'column', rebalance => {'column': .., 'probabilities': {value: share}}, impute => "
        "[columns], fairness => {'target_column': .., 'sensitive_columns': [..]}, "
        "drop_unique_violation, unique_columns => [..], limit_strings. target counts the rows "
        "(sessions) that survive all of them. at_most => n caps the rows at n whatever the "
        "target would be (the rewrite sets it from a query's LIMIT).",
        required=("model",),
        options=options.GenerateOptions,
        aliases={"where": "filter"},
        udf="synth_generate",
        options_macro=True,
    ),
    Function(
        "generate_into",
        WRITES,
        "generate_into('table', 'model', <generate()'s arguments>) -> one summary row. Appends "
        "batch by batch (batch_size rows, one transaction each) to the table, created with the "
        "model's types if missing; called again after an interruption with the same arguments, "
        "it resumes at the next batch (same rows as an uninterrupted run: no duplicate, no gap). "
        "A statement that is only this call, run through duck_synth (session.sql, the CLI), runs "
        "outside the statement (see Session.sql) so DuckDB checkpoints between batches.",
        required=("table_name", "model"),
        options=options.GenerateOptions,
        without=("seed_rows", "at_most"),
        udf="synth_generate_into",
        options_macro=True,
    ),
    Function(
        "generations",
        READS,
        "generations() -> the generation log: what was asked, rows (sessions) drawn, passed and "
        "returned, and the acceptance rate (passed / drawn: the share of drawn rows that "
        "survived filters, constraints, unique values and quotas).",
        body="""\
    SELECT generation_id, model, version, arguments, seed, rows_drawn, rows_passed,
           rows_returned, coalesce(rows_passed, rows_returned) / nullif(rows_drawn, 0)
               AS acceptance, seconds, created
    FROM synth.generations ORDER BY generation_id""",
    ),
    Function(
        "resample",
        READS,
        "resample('table or query', 'column', condition => 'SQL', replace_values => [..] | "
        "model => 'm') -> the rows with the column replaced where condition holds (all rows "
        "without one): by values drawn from the list, or by the model given each row's other "
        "columns. A condition reading the column is drawn again until it no longer holds "
        "(duck_synth/resample.py).",
        required=("source", "field"),
        options=options.ResampleOptions,
        udf="synth_resample",
    ),
    Function(
        "synth_sql",
        READS,
        "synth_sql('any duck_synth SQL') -> its result, with the rewrite (filter pushdown) "
        "applied.",
        required=("sql_text",),
        udf="synth_rewrite",
    ),
    Function(
        "models",
        READS,
        "models() -> the trained model versions (weights left out), with the workflows that use "
        "them.",
        body="""\
    SELECT m.name, m.version, m.method, m.source, m.created, m.training_rows,
           json_array_length(m.columns) AS n_columns,
           CAST(json_extract(m.metrics, '$.privacy.epsilon') AS DOUBLE) AS epsilon,
           CAST(json_extract(m.metrics, '$.privacy.delta') AS DOUBLE) AS delta, m.options,
           m.metrics, m.format_version,
           coalesce((SELECT list(w.name ORDER BY w.name) FROM synth.workflows w
                     WHERE list_contains(CAST(w.models AS VARCHAR[]), m.name)), [])
               AS workflows
    FROM synth.models m ORDER BY m.name, m.version""",
    ),
    Function(
        "create_workflow",
        WRITES,
        "create_workflow('name', 'query' [, parameters => {'n': 1000}]) -> one row. Saves the "
        "query (rewrite applied) as table macro name(n := 1000): FROM name() runs it, FROM "
        "name(n := 5) with other arguments.",
        required=("name", "sql_text"),
        options=options.WorkflowOptions,
        udf="synth_create_workflow",
    ),
    Function(
        "drop_workflow",
        WRITES,
        "drop_workflow('name') -> what was dropped.",
        required=("name",),
        udf="synth_drop_workflow",
    ),
    Function(
        "workflows",
        READS,
        "workflows() -> the saved workflows (never running one).",
        body="""\
    SELECT name, CAST(models AS VARCHAR[]) AS models, parameters, sql, runs_as, created
    FROM synth.workflows ORDER BY name""",
    ),
    Function(
        "describe_model",
        READS,
        "describe_model('model[@version]') -> one row per column: kind, type, protected "
        "statistics.",
        required=("model",),
        udf="synth_describe",
    ),
    Function(
        "drop_model",
        WRITES,
        "drop_model('model' [, version]) -> what was dropped.",
        required=("model",),
        options=options.DropModelOptions,
        udf="synth_drop",
    ),
    Function(
        "export_model",
        WRITES,
        "export_model('model[@version]', 'file.safetensors') -> the file written: the weights, "
        "and the model's JSON in its metadata.",
        required=("model", "path"),
        udf="synth_export",
    ),
    Function(
        "import_model",
        WRITES,
        "import_model('file' [, name]) -> the model version added (the file is checked whole "
        "first).",
        required=("path",),
        options=options.ImportModelOptions,
        udf="synth_import",
    ),
    Function(
        "validate",
        READS,
        "validate('model[@version]', 'table or query') -> one row per (column, rule) checked "
        "against what the model learned: passed, violations, rows, share, example, detail.",
        required=("model", "synthetic"),
        udf="synth_validate",
    ),
    Function(
        "evaluate",
        READS,
        "evaluate('real', 'synthetic' [, holdout, target, columns, sample, seed, sensitive]) -> "
        "one row per metric (metric, columns, value, detail): fidelity computed in SQL, plus "
        "overall scores; privacy and a membership-inference attack with a holdout (attribute "
        "inference on the sensitive column too), utility (train on synthetic, test on the "
        "holdout) with a target. With session_key and order_by: session and step metrics, and "
        "privacy over whole sessions.",
        required=("real_data", "synthetic_data"),
        options=options.EvaluateOptions,
        udf="synth_evaluate",
    ),
    Function(
        "report",
        WRITES,
        "report('real', 'synthetic' [, holdout, path, columns, bins, sensitive]) -> one row "
        "(path, columns, plots, bytes): a self-contained HTML file with distribution overlays, "
        "association heatmaps, the metric table and, with a holdout, privacy figures and "
        "attacks.",
        required=("real_data", "synthetic_data"),
        options=options.ReportOptions,
        udf="synth_report",
    ),
    Function(
        "pseudonymize",
        READS,
        "Keyed transforms (duck_synth/transforms.py): HMAC-SHA256 under a secret key, so the "
        "same value and key give the same output in every table; without the key nothing can "
        "be reversed or linked. pseudonymize(value, key) -> a 20-hex-digit pseudonym (NULL "
        "stays NULL).",
        scalar=True,
        parameters="value, key",
        body="    synth_pseudonymize(CAST(value AS VARCHAR), key)",
    ),
    Function(
        "mask",
        READS,
        "mask(value, key) -> same length and character classes (digit -> digit, letter -> "
        "letter of the same case, the rest kept).",
        scalar=True,
        parameters="value, key",
        body="    synth_mask(CAST(value AS VARCHAR), key)",
    ),
    Function(
        "shift_date",
        READS,
        "shift_date(date, session, key [, max_days]): every value of a session moved by the same "
        "number of days, drawn from [-max_days, max_days] by the session's HMAC.",
        scalar=True,
        parameters="value, session, key, max_days := 30",
        body="    value + CAST(synth_date_offset(CAST(session AS VARCHAR), key, max_days) AS INTEGER)",
    ),
    Function(
        "shift_timestamp",
        READS,
        "shift_timestamp(timestamp, session, key [, max_days]): as shift_date, for timestamps.",
        scalar=True,
        parameters="value, session, key, max_days := 30",
        body="    value + to_days(CAST(synth_date_offset(CAST(session AS VARCHAR), key, max_days) "
        "AS INTEGER))",
    ),
    Function(
        "runs",
        READS,
        "runs() -> the trainings, newest last: status (running, succeeded, failed, cancelled, "
        "interrupted), progress (share done, written about once a second while it runs), "
        "epochs, seconds, the last epoch's losses and the error of a failed run. A client of a "
        "server follows a training here; cancelling its statement stops it (the run becomes "
        "cancelled, no model).",
        body="""\
    SELECT run_id, model, version, method, status, progress, epochs, seconds,
           CAST(json_extract(losses, '$[-1]') AS JSON) AS last_losses, started, finished, error
    FROM synth.runs ORDER BY run_id""",
    ),
)

# UDFs that no table function of the surface calls by name: a saved workflow's macro calls
# synth_workflow(name, arguments, hidden) (workflows.py); the keyed transforms' scalar UDFs
# (transforms.py) are typed, and a read-only caller may call them directly.
WORKFLOW_UDF = ("synth_workflow", 3)
TRANSFORM_UDFS = ("synth_pseudonymize", "synth_mask", "synth_date_offset")


PLUGINS = "DUCK_SYNTH_PLUGINS"
_plugins_loaded = False
_registered: list[Function] = []
_implementations: dict[str, Callable[..., str]] = {}


def register(function: Function, implementation: Callable[..., str] | None = None) -> None:
    """Add a function to the surface (a plugin's: see DUCK_SYNTH_PLUGINS in README). Its macro
    is created and its UDF registered when a database is next opened; ``implementation(cursor,
    *arguments)`` returns the SQL that reads its result, as the built-in UDFs do."""
    if find(function.name) is not None:
        raise SynthError(f"{function.name}() is already part of duck_synth's SQL surface")
    if (function.udf is None) != (implementation is None):
        raise SynthError(f"{function.name}(): a UDF needs an implementation, and only a UDF")
    _registered.append(function)
    if function.udf is not None:
        _implementations[function.udf] = implementation


def load_plugins() -> None:
    """Import the modules DUCK_SYNTH_PLUGINS names (comma-separated), once: each registers its
    functions. The server and the CLI load them as an embedded session does."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS, "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise SynthError(f"{PLUGINS}: cannot import '{module}': {error}") from None


def functions() -> tuple[Function, ...]:
    return (*BUILTIN, *_registered)


def implementations() -> dict[str, Callable[..., str]]:
    """The registered functions' UDFs (the built-in ones are in actions.py)."""
    return dict(_implementations)


def find(name: str) -> Function | None:
    return next((f for f in functions() if f.name == name.lower()), None)


def reading() -> set[str]:
    return {f.name for f in functions() if f.role == READS and not f.scalar}


def writing() -> set[str]:
    return {f.name for f in functions() if f.role == WRITES}


def udf_arities() -> dict[str, int]:
    """Every VARCHAR UDF a table function (or a workflow) calls, with its number of arguments."""
    arities = {f.udf: f.udf_arity() for f in functions() if f.udf}
    arities[WORKFLOW_UDF[0]] = WORKFLOW_UDF[1]
    return arities


def acting_pattern() -> re.Pattern[str]:
    """Calls that run Python (a UDF) when bound: statements duck_synth must run itself."""
    names = sorted(f.name for f in functions() if f.udf)
    return re.compile(r"\b(" + "|".join(names) + r"|synth_\w+)\s*\(", re.I)


def arguments(name: str) -> set[str] | None:
    """The named arguments ``name`` takes (None: not a function with named arguments)."""
    function = find(name)
    return set(function.named()) if function is not None and function.options else None


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
    value = f"coalesce({name}, {', '.join(_quoted(a) for a in aliases)})" if aliases else name
    as_text = next(f for f in fields(function.options) if f.name == name).metadata.get("as_text")
    return f"CAST({value} AS VARCHAR)" if as_text else value


def _quoted(name: str) -> str:
    return f'"{name}"' if name in ("where",) else name  # reserved words in DuckDB's parser


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
    values = [f"CAST({a} AS VARCHAR)" for a in function.required]
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


def macros_sql(of: tuple[Function, ...] | None = None) -> str:
    """The macros of ``of`` (every function: built-in and registered) after the prelude."""
    return PRELUDE + "".join("\n" + _render(f) for f in (functions() if of is None else of))


MACROS_FILE = Path(__file__).resolve().parent.parent / "sql" / "macros.sql"


# -- the README's reference table -----------------------------------------------------------
def reference_table() -> str:
    """Markdown: each function, whether it reads or writes, its arguments (named ones with their
    defaults)."""
    rows = ["| function | role | arguments |", "| --- | --- | --- |"]
    for f in BUILTIN:
        if f.body is not None:
            arguments = [f.parameters] if f.parameters else []
        else:
            arguments = [*f.required, *(_named_with_default(f, n) for n in f.named())]
        listed = ", ".join(f"`{a}`" for a in arguments)
        rows.append(f"| `{f.name}` | {f.role} | {listed} |")
    return "\n".join(rows)


def _named_with_default(function: Function, name: str) -> str:
    if name in function.aliases:
        return f"{name} =>"
    default = next(f for f in fields(function.options) if f.name == name).default
    if default is None or default is MISSING:
        return f"{name} =>"
    shown = str(default).lower() if isinstance(default, bool) else repr(default)
    return f"{name} => {shown}"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else MACROS_FILE
    target.write_text(macros_sql(BUILTIN))
    print(f"wrote {target}")
