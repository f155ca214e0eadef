"""The ``duck-synth`` command: run duck_synth SQL from the command line or in a shell.

    duck-synth [DATABASE | grpc://host:port] [-c SQL | -f FILE.sql] [--csv | --json] [--max-rows N]
               [--read-only] [--token T] [--profile NAME]
    duck-synth serve [DATABASE] [--host H] [--port P] [--quack-port Q | --no-quack] [--token T]
               [--read-only-token T] [--allow-files DIR ...] [--max-rows N]
               [--statement-timeout S] [--tls-cert F --tls-key F]

- ``-c SQL`` / ``-f FILE``: run the statements in order and print the last result.
- no ``-c``/``-f``: an interactive shell when stdin is a terminal, else all of stdin is run.

Statements are split on ``;`` (outside quotes and comments) and run one at a time, so a model
trained by one statement is known when the next one's predicates are pushed into generate().
Errors print ``Error: <one line>`` on stderr. Ctrl-C cancels the running statement (a training
run is recorded as cancelled, no model is added); outside the shell the exit code is then 130.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass

import duckdb
import pyarrow as pa

import duck_synth
from duck_synth import SynthError, surface
from duck_synth.statements import script_statements, split_statements

PROMPT = "duck_synth> "
CONTINUATION = "       ...> "
HISTORY_FILE = "~/.duck_synth_history"
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
DEFAULT_MAX_ROWS = 40
MODES = ("table", "csv", "json")

HELP = """\
Enter SQL statements ending with ';' (they may span several lines). duck_synth adds:
  FROM train('name', 'table or query', max_time => 60, ...)   train a model
  FROM generate('name', target => 1000) WHERE ...             synthetic rows (WHERE is pushed in)
  FROM models()  FROM describe_model('name')  FROM drop_model('name')
  EXPLAIN <query>                                              where each predicate goes
Ctrl-C cancels the running statement; a cancelled training adds no model.
Shell commands:
  .help               this text
  .tables             list tables and views
  .models             list trained models (FROM models())
  .mode table|csv|json  how results are printed
  .read FILE          run the statements in FILE
  .quit / .exit       leave (Ctrl-D too)"""

TABLES_QUERY = """
SELECT CASE WHEN schema_name = 'main' THEN table_name ELSE schema_name || '.' || table_name END AS name,
       'table' AS type
FROM duckdb_tables() WHERE database_name = current_database()
UNION ALL
SELECT CASE WHEN schema_name = 'main' THEN view_name ELSE schema_name || '.' || view_name END, 'view'
FROM duckdb_views() WHERE NOT internal AND database_name = current_database()
ORDER BY name"""
MODELS_QUERY = """
SELECT name, version, method, source, training_rows, n_columns,
       strftime(created, '%Y-%m-%d %H:%M:%S') AS created
FROM models()"""


def _without_leading_comments(statement: str) -> str:
    return re.sub(r"^(\s+|--[^\n]*(\n|$)|/\*.*?\*/)*", "", statement, flags=re.S)


# -- output ------------------------------------------------------------------------------------
@dataclass
class Output:
    mode: str = "table"
    max_rows: int = DEFAULT_MAX_ROWS  # 0: all rows
    stream: object = None  # defaults to sys.stdout at print time

    @property
    def out(self):
        return self.stream or sys.stdout

    def text(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def table(self, table: pa.Table) -> None:
        if table.num_columns == 0 or (
            table.num_rows == 0 and table.column_names in (["Count"], ["Success"])
        ):
            return  # a statement with nothing to show (CREATE, SET, DROP, ...)
        if self.mode == "csv":
            write_csv(table, self.out)
        elif self.mode == "json":
            write_json(table, self.out)
        else:
            self.boxed(table)
        self.out.flush()

    def boxed(self, table: pa.Table) -> None:
        terminal = self.out.isatty() if hasattr(self.out, "isatty") else False
        width = shutil.get_terminal_size().columns if terminal else 1_000_000
        max_rows = self.max_rows if self.max_rows > 0 else max(table.num_rows, 1)
        mode = (
            "columns" if terminal and table.num_rows == 1 and _rows_width(table) > width else "rows"
        )
        relation = _renderer().from_arrow(table)
        saved = sys.stdout
        sys.stdout = self.out  # DuckDB's renderer prints through sys.stdout
        try:
            relation.show(max_width=width, max_rows=max_rows, max_col_width=width, render_mode=mode)
        finally:
            sys.stdout = saved


_render_connection: duckdb.DuckDBPyConnection | None = None


def _renderer() -> duckdb.DuckDBPyConnection:
    """A private in-memory DuckDB used only to draw result tables."""
    global _render_connection
    if _render_connection is None:
        _render_connection = duckdb.connect(":memory:")
    return _render_connection


def _rows_width(table: pa.Table) -> int:
    """About how wide a one-row table is when drawn with one column per field."""
    row = table.slice(0, 1).to_pylist()[0] if table.num_rows else {}
    return sum(max(len(name), len(str(row.get(name))), 8) + 3 for name in table.column_names) + 1


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _rows(table: pa.Table):
    """Row tuples (columns may share a name, so no dicts)."""
    return zip(*(column.to_pylist() for column in table.columns), strict=True)


def write_csv(table: pa.Table, out) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in _rows(table):
        writer.writerow(["" if v is None else _csv_value(v) for v in row])


def _csv_value(value) -> str:
    if isinstance(value, dict | list | tuple):
        return json.dumps(_plain(value), default=str)
    return str(value)


def write_json(table: pa.Table, out) -> None:
    """A JSON array of objects, one row a line."""
    names = table.column_names
    lines = [
        json.dumps(_plain(dict(zip(names, row, strict=True))), default=str) for row in _rows(table)
    ]
    out.write("[" + ",\n ".join(lines) + "]\n")


# -- running statements --------------------------------------------------------------------
class Interrupts:
    """SIGINT while duck-synth runs: Python's KeyboardInterrupt, and a DuckDB interrupt.

    The KeyboardInterrupt reaches Python code (a training in a UDF catches it and records the
    run as cancelled). A plain DuckDB query runs in C++ and never sees it, so a watcher thread,
    woken through ``signal.set_wakeup_fd``, interrupts the connection of the running statement.
    """

    def __init__(self) -> None:
        self.count = 0
        self.connection = None  # the session of the running statement
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._previous_handler = None
        self._previous_wakeup = -1
        self._generation = 0

    def __call__(self, signum, frame) -> None:
        self.count += 1
        raise KeyboardInterrupt

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals are for the main thread only
        self._previous_handler = signal.getsignal(signal.SIGINT)
        if self._previous_handler is signal.SIG_IGN:  # a caller that ignores SIGINT keeps it so
            return
        signal.signal(signal.SIGINT, self)
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        self._previous_wakeup = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._sockets = (reader, writer)
        threading.Thread(
            target=self._watch, args=(reader,), name="duck-synth-sigint", daemon=True
        ).start()

    def uninstall(self) -> None:
        if self._previous_handler is signal.SIG_IGN or self._previous_handler is None:
            return
        signal.set_wakeup_fd(self._previous_wakeup)
        signal.signal(signal.SIGINT, self._previous_handler)
        if self._sockets:
            for end in self._sockets:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)  # wakes the watcher
                end.close()
            self._sockets = None

    def _watch(self, reader: socket.socket) -> None:
        while True:
            try:
                data = reader.recv(64)
            except OSError:
                return
            if not data:
                return
            if signal.SIGINT in data:
                self._interrupt_statement()

    def _interrupt_statement(self) -> None:
        """Interrupt the running statement until it ends: an interrupt that lands before DuckDB
        starts the query (it clears the flag then) would be lost."""
        generation = self._generation
        while self._generation == generation and (connection := self.connection) is not None:
            with contextlib.suppress(Exception):
                connection.interrupt()
            time.sleep(0.05)

    @contextlib.contextmanager
    def running(self, session):
        connection = session  # anything with interrupt(): a local or a remote session
        count = self.count
        self._generation += 1
        self.connection = connection
        try:
            yield
        finally:
            self.connection = None
            self._generation += 1
            if self.count != count and connection is not None:
                # DuckDB's own SIGINT check ("Query interrupted") can leave the query running in
                # the background, blocking the connection's next statement: stop it for good.
                with contextlib.suppress(Exception):
                    connection.interrupt()


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line."""
    if isinstance(error, KeyboardInterrupt | duckdb.InterruptException) or (
        type(error) is RuntimeError and str(error) == "Query interrupted"  # DuckDB saw the SIGINT
    ):
        return "interrupted"
    text = str(error).strip()
    if isinstance(error, duckdb.Error | SynthError):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[0] if lines else type(error).__name__
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def report(error: BaseException) -> None:
    print(f"Error: {one_line(error)}", file=sys.stderr, flush=True)
    if os.environ.get("DUCK_SYNTH_DEBUG") and not isinstance(error, SynthError | KeyboardInterrupt):
        import traceback

        traceback.print_exception(error, file=sys.stderr)


def execute(session, statement: str, interrupts: Interrupts) -> pa.Table | str:
    """Run one statement: a result table, or the explain text of an EXPLAIN."""
    with interrupts.running(session):
        return _execute(session, statement)


def _execute(session, statement: str) -> pa.Table | str:
    bare = _without_leading_comments(statement)
    if re.match(r"explain\b", bare, flags=re.I) and not re.match(
        r"explain\s+analy[sz]e\b", bare, flags=re.I
    ):
        text = session.explain(bare)
        if not surface.acting_pattern().search(bare):
            plan = session.sql(bare).arrow()
            if "explain_value" in plan.column_names:
                text += "\n-- DuckDB plan:\n" + "\n".join(
                    str(v) for v in plan.column("explain_value").to_pylist()
                )
        return text
    return session.sql(statement).arrow()


def show(output: Output, result: pa.Table | str | None) -> None:
    if isinstance(result, str):
        output.text(result)
    elif result is not None:
        output.table(result)


def run_script(session, text: str, output: Output, interrupts: Interrupts) -> int:
    """Run every statement of ``text`` in order, print the last result; stop at the first error."""
    result = None
    for statement in script_statements(text):
        seen = interrupts.count
        try:
            result = execute(session, statement, interrupts)
        except KeyboardInterrupt as error:
            report(error)
            return EXIT_INTERRUPTED
        except Exception as error:
            report(error)
            return EXIT_INTERRUPTED if interrupts.count > seen else EXIT_ERROR
    show(output, result)
    return 0


# -- the interactive shell -------------------------------------------------------------------
class Shell:
    def __init__(self, session, output: Output, interrupts: Interrupts, database: str):
        self.session = session
        self.output = output
        self.interrupts = interrupts
        self.database = database

    def run(self) -> int:
        history = self._start_history()
        print(
            f"duck_synth {duck_synth.__version__} (DuckDB {duckdb.__version__}) on {self.database}\n"
            "Statements end with ';'. Enter .help for help, .quit to leave.",
            flush=True,
        )
        buffer = ""
        try:
            while True:
                try:
                    line = input(CONTINUATION if buffer else PROMPT)
                    if not buffer and line.strip().startswith("."):
                        if self.command(line.strip()) == "quit":
                            return 0
                        continue
                    buffer = f"{buffer}\n{line}" if buffer else line
                    split = split_statements(buffer)
                    buffer = split.rest if split.rest_has_code else ""
                    self.run_statements(split.statements)
                except KeyboardInterrupt:  # at the prompt: drop the unfinished statement
                    print(flush=True)
                    buffer = ""
                except EOFError:
                    print(flush=True)
                    return 0
        finally:
            self._save_history(history)

    def run_statements(self, statements: list[str]) -> None:
        """Run in order; Ctrl-C cancels the running statement and skips the rest."""
        for statement in statements:
            seen = self.interrupts.count
            try:
                show(self.output, execute(self.session, statement, self.interrupts))
            except KeyboardInterrupt as error:
                report(error)
                return
            except Exception as error:  # the engine's message: a cancelled training, a bad query
                report(error)
                if self.interrupts.count > seen:
                    return

    def command(self, line: str) -> str | None:
        name, _, argument = line.partition(" ")
        argument = argument.strip()
        name = name.lower()
        if name in (".quit", ".exit", ".q"):
            return "quit"
        if name == ".help":
            self.output.text(HELP)
        elif name == ".tables":
            self.run_statements([TABLES_QUERY])
        elif name == ".models":
            self.run_statements([MODELS_QUERY])
        elif name == ".mode":
            if argument in MODES:
                self.output.mode = argument
            else:
                report(
                    SynthError(f".mode: give one of {', '.join(MODES)} (now {self.output.mode})")
                )
        elif name == ".read":
            try:
                text = read_file(argument)
            except SynthError as error:
                report(error)
                return None
            self.run_statements(script_statements(text))
        else:
            report(SynthError(f"unknown command '{name}'; enter .help for the commands"))
        return None

    @staticmethod
    def _start_history():
        try:
            import readline
        except ImportError:  # pragma: no cover - platforms without readline
            return None
        path = os.path.expanduser(HISTORY_FILE)
        with contextlib.suppress(OSError):
            readline.read_history_file(path)
        readline.set_history_length(1000)
        return readline, path

    @staticmethod
    def _save_history(history) -> None:
        if history is None:
            return
        readline, path = history
        with contextlib.suppress(OSError):
            readline.write_history_file(path)


# -- main ------------------------------------------------------------------------------------
def read_file(path: str) -> str:
    if not path:
        raise SynthError("give a file name")
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as error:
        raise SynthError(f"cannot read '{path}': {error.strerror}") from None
    except UnicodeDecodeError:
        raise SynthError(f"cannot read '{path}': not UTF-8 text") from None


SUBCOMMANDS = {
    "serve [DATABASE]": "serve a database over Arrow Flight SQL and Quack "
    "(duck-synth serve --help)",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="duck-synth",
        description="Run duck_synth SQL (train, generate, ...) on a DuckDB database.",
        # the subcommands are dispatched before this parser (main), so it lists them itself
        epilog="Without -c or -f: an interactive shell, or the SQL read from stdin when it is "
        "not a terminal.\n\nsubcommands:\n"
        + "\n".join(f"  {name:<22}{what}" for name, what in SUBCOMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "database",
        nargs="?",
        default="synth.duckdb",
        help="DuckDB database file (default: synth.duckdb; ':memory:' for none)",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "-c", "--command", metavar="SQL", help="run SQL (one or more statements) and exit"
    )
    source.add_argument("-f", "--file", metavar="FILE", help="run the SQL in FILE and exit")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--csv", dest="mode", action="store_const", const="csv", help="print results as CSV"
    )
    mode.add_argument(
        "--json", dest="mode", action="store_const", const="json", help="print results as JSON"
    )
    p.add_argument(
        "--max-rows",
        type=int,
        default=DEFAULT_MAX_ROWS,
        metavar="N",
        help=f"rows shown in a table before eliding the middle (default {DEFAULT_MAX_ROWS}; 0: all)",
    )
    p.add_argument("--read-only", action="store_true", help="open the database read-only")
    p.add_argument("--token", help="token for a server (grpc://...; default: $DUCK_SYNTH_TOKEN)")
    p.add_argument(
        "--profile", help="connect as this profile of ~/.config/duck_synth/config.toml says"
    )
    p.add_argument(
        "--version",
        action="version",
        version=f"duck-synth {duck_synth.__version__} (DuckDB {duckdb.__version__})",
    )
    return p


def serve_parser() -> argparse.ArgumentParser:
    from duck_synth.serve import DEFAULT_PORT, DEFAULT_QUACK_PORT

    p = argparse.ArgumentParser(
        prog="duck-synth serve",
        description="Serve a database: Arrow Flight SQL (ADBC, duck_synth.connect('grpc://...')) "
        "and Quack (the DuckDB CLI).",
    )
    p.add_argument("database", nargs="?", default="synth.duckdb", help="DuckDB database file")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"Flight SQL port ({DEFAULT_PORT}; 0: any free)",
    )
    quack = p.add_mutually_exclusive_group()
    quack.add_argument(
        "--quack-port",
        type=int,
        default=DEFAULT_QUACK_PORT,
        help=f"Quack port ({DEFAULT_QUACK_PORT})",
    )
    quack.add_argument("--no-quack", action="store_true", help="no Quack endpoint")
    p.add_argument(
        "--token",
        action="append",
        default=[],
        help="an admin token (repeatable; also $DUCK_SYNTH_TOKEN); required beyond loopback",
    )
    p.add_argument(
        "--read-only-token",
        action="append",
        default=[],
        help="a token that may read and generate, not train, drop or write (repeatable)",
    )
    p.add_argument(
        "--allow-files",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder whose files admin tokens may read and write (repeatable; default: the "
        "database's folder; read-only tokens never reach files)",
    )
    p.add_argument(
        "--max-rows",
        type=int,
        default=10_000_000,
        help="rows one statement may generate or return (default 10,000,000)",
    )
    p.add_argument(
        "--statement-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds one statement may run (default: no limit)",
    )
    p.add_argument("--tls-cert", help="PEM certificate: serve grpc+tls://")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument(
        "--client-sql",
        action="store_true",
        help="print the LOAD statements that let the DuckDB CLI speak Quack, and exit "
        '(duckdb -cmd "$(duck-synth serve --client-sql)")',
    )
    return p


def serve_main(argv: list[str]) -> int:
    from duck_synth.serve import ServeOptions, auth, serve

    args = serve_parser().parse_args(argv)
    if args.client_sql:
        from duck_synth.serve.quack import load_statements

        try:
            print(load_statements())
        except SynthError as error:
            report(error)
            return EXIT_ERROR
        return 0
    admin = list(args.token)
    if not admin and os.environ.get("DUCK_SYNTH_TOKEN"):
        admin.append(os.environ["DUCK_SYNTH_TOKEN"])
    options = ServeOptions(
        host=args.host,
        port=args.port,
        quack_port=None if args.no_quack else args.quack_port,
        tokens=auth.Tokens(admin=admin, read_only=list(args.read_only_token)),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        allow_files=list(args.allow_files) or None,
        max_rows=args.max_rows,
        statement_timeout=args.statement_timeout,
    )
    try:
        server = serve(args.database, options)
    except (SynthError, duckdb.Error) as error:
        report(error)
        return EXIT_ERROR
    quack = f" and {server.quack_uri}" if server.quack_uri else ""
    print(f"duck-synth serving {args.database} on {server.url}{quack}", flush=True)
    try:
        server.wait()
    finally:
        server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        logging.getLogger("sqlglot").setLevel(logging.ERROR)
        return serve_main(argv[1:])
    args = parser().parse_args(argv)
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # parse fallbacks are not for users
    output = Output(mode=args.mode or "table", max_rows=max(args.max_rows, 0))
    interrupts = Interrupts()
    interrupts.install()
    try:
        return _main(args, output, interrupts)
    except KeyboardInterrupt as error:
        report(error)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `duck-synth -c ... | head`
        _silence_stdout()
        return 0
    finally:
        interrupts.uninstall()


def _main(args, output: Output, interrupts: Interrupts) -> int:
    text = None
    if args.command is not None:
        text = args.command
    elif args.file is not None:
        try:
            text = read_file(args.file)
        except SynthError as error:
            report(error)
            return EXIT_ERROR
    interactive = text is None and sys.stdin.isatty()
    if text is None and not interactive:
        text = sys.stdin.read()
    try:
        if args.profile:
            session = duck_synth.connect(profile=args.profile, token=args.token)
        else:
            session = duck_synth.connect(args.database, read_only=args.read_only, token=args.token)
    except (SynthError, duckdb.Error) as error:
        report(error)
        return EXIT_ERROR
    try:
        if interactive:
            return Shell(session, output, interrupts, args.database).run()
        return run_script(session, text, output, interrupts)
    finally:
        session.close()


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
