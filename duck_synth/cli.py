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
import logging
import os
import re
import signal
import socket
import sys
import threading
import time

import duckdb
import pyarrow as pa

import duck_synth
from duck_synth import SynthError, surface
from duck_synth.cli_output import DEFAULT_MAX_ROWS, EXIT_ERROR, Output, report
from duck_synth.statements import script_statements, split_statements

PROMPT = "duck_synth> "
CONTINUATION = "       ...> "
HISTORY_FILE = "~/.duck_synth_history"
EXIT_INTERRUPTED = 130
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        logging.getLogger("sqlglot").setLevel(logging.ERROR)
        from duck_synth.serve.command import serve_main

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
