"""The SQL surface, declared once: every function duck_synth adds to DuckDB, its arguments, the
Python UDF behind it and whether it reads or writes.

- function.py: ``Function`` and the constructors of the declarations;
- builtin.py: the declarations, ``BUILTIN`` (callable) and ``PLANNED``;
- render.py: sql/macros.sql and the README's reference table rendered from them;
- here: the registry (``BUILTIN`` and what plugins ``register``) and what the rest of duck_synth
  asks of it.

Everything else derives from the registry: sql/macros.sql (``python -m duck_synth.surface``
writes the file; tests/test_surface.py fails when the checked-in file differs), the UDFs
actions.py registers, the statements duck_synth runs itself (``acting_pattern``), the read-only
rule of access.py (``reading`` / ``writing``), the arguments the rewrite accepts, and the
README's reference table. Named arguments come from the option dataclasses of options.py, where
their types and bounds are checked.

Planned functions (``PLANNED``: ``Function(..., planned="issue 20")``, no UDF, body or options)
are the functions later issues add, declared now for one reason: their role. ``reading()`` and
``writing()`` include them, so access.py refuses a read-only token ``deploy(...)`` before deploy
exists. Nothing else sees them: no macro in sql/macros.sql (calling one fails as any unknown
function does in DuckDB), no UDF, no named arguments, and the README lists them apart as not
callable. A plugin cannot take a planned name: ``register`` refuses it in one line naming the
issue. Implementing one means moving its declaration from ``PLANNED`` to ``BUILTIN`` with its
UDF (or body) and options.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable

from ..errors import SynthError
from .builtin import BUILTIN, PLANNED, SCORE_UDF, TRANSFORM_UDFS, WORKFLOW_UDF
from .function import READS, WRITES, Function
from .render import MACROS_FILE, render_macros, render_reference

__all__ = [
    "BUILTIN",
    "MACROS_FILE",
    "PLANNED",
    "PLUGINS",
    "READS",
    "SCORE_UDF",
    "TRANSFORM_UDFS",
    "WORKFLOW_UDF",
    "WRITES",
    "Function",
    "acting_pattern",
    "arguments",
    "declared",
    "find",
    "functions",
    "implementations",
    "load_plugins",
    "macros_sql",
    "reading",
    "reference_table",
    "register",
    "udf_arities",
    "writing",
]

PLUGINS = "DUCK_SYNTH_PLUGINS"
_plugins_loaded = False
_registered: list[Function] = []
_implementations: dict[str, Callable[..., str]] = {}


def register(function: Function, implementation: Callable[..., str] | None = None) -> None:
    """Add a function to the surface (a plugin's: see DUCK_SYNTH_PLUGINS in README). Its macro
    is created and its UDF registered when a database is next opened; ``implementation(cursor,
    *arguments)`` returns the SQL that reads its result, as the built-in UDFs do."""
    known = find(function.name)
    if known is not None and known.planned:
        raise SynthError(
            f"{function.name}() is reserved: duck_synth plans it ({known.planned}), not a plugin"
        )
    if known is not None:
        raise SynthError(f"{function.name}() is already part of duck_synth's SQL surface")
    if function.planned:
        raise SynthError(f"{function.name}(): a plugin registers functions it implements")
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
    """The callable functions: built-in and registered."""
    return (*BUILTIN, *_registered)


def declared() -> tuple[Function, ...]:
    """Every function with a role: the callable ones and the planned ones."""
    return (*functions(), *PLANNED)


def implementations() -> dict[str, Callable[..., str]]:
    """The registered functions' UDFs (the built-in ones are in actions.py)."""
    return dict(_implementations)


def find(name: str) -> Function | None:
    return next((f for f in declared() if f.name == name.lower()), None)


def reading() -> set[str]:
    return {f.name for f in declared() if f.role == READS and not f.scalar}


def writing() -> set[str]:
    return {f.name for f in declared() if f.role == WRITES}


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


def macros_sql(of: tuple[Function, ...] | None = None) -> str:
    """The macros of ``of`` (every callable function: built-in and registered) after the
    prelude."""
    return render_macros(functions() if of is None else of)


def reference_table() -> str:
    """The README's table of the built-in functions, then the planned ones."""
    return render_reference(BUILTIN, PLANNED)
