"""One SQL function of the surface (``Function``), and the constructors its declarations use
(builtin.py): ``table`` for a table function over a UDF, ``view`` for a table macro of plain
SQL over the catalog, ``scalar`` for a scalar macro."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from ..errors import SynthError

READS, WRITES = "reads", "writes"


@dataclass(frozen=True)
class Function:
    """One SQL function. A table function with ``udf`` passes its required arguments and (with
    ``options``) one JSON object of its named arguments to that UDF through ``synth_call``; one
    with ``body`` is plain SQL (catalog views, keyed transforms) and needs no Python. A
    ``planned`` one (``"issue 19"``) has neither yet: only its role counts (see __init__.py)."""

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
    planned: str | None = None  # the issue that will implement it: declared, not callable yet
    lists: tuple[str, ...] = ()  # required arguments that may be a list of names (JSON to the UDF)
    structs: tuple[str, ...] = ()  # required arguments that are a struct (JSON to the UDF)

    def __post_init__(self) -> None:
        if self.role not in (READS, WRITES):
            raise SynthError(f"{self.name}(): role must be READS or WRITES, got {self.role!r}")
        if self.planned and (self.udf or self.body or self.options):
            raise SynthError(f"{self.name}(): a planned function has no UDF, body or options yet")

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

    def about(self, doc: str) -> Function:
        """This function with its documentation (the constructors below leave it for last)."""
        return replace(self, doc=doc)


def table(
    name: str, role: str, udf: str, required: tuple[str, ...], options: type | None = None, **more
) -> Function:
    """A table function calling ``udf`` (its doc follows with ``.about``)."""
    return Function(name, role, "", required, options, udf=udf, **more)


def view(name: str, body: str) -> Function:
    """A table macro reading the catalog (no arguments, reads only)."""
    return Function(name, READS, "", body=body)


def scalar(name: str, parameters: str, body: str) -> Function:
    """A scalar macro (reads only)."""
    return Function(name, READS, "", scalar=True, parameters=parameters, body=body)


def planned(name: str, role: str, issue: str, doc: str, scalar: bool = False) -> Function:
    """A function a planned issue adds: its role rules access before its code exists."""
    return Function(name, role, doc, scalar=scalar, planned=issue)
