"""``duck-synth serve``: its arguments, and starting the server they describe."""

from __future__ import annotations

import argparse
import os

import duckdb

from duck_synth import SynthError
from duck_synth.cli_output import EXIT_ERROR, report


def _token_arguments(p: argparse.ArgumentParser) -> None:
    """Who may call: admin, read-only and deployment tokens."""
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
        "--deployment-token",
        action="append",
        default=[],
        metavar="TOKEN=P1,P2",
        help="a token that may call infer() on those deployed pipelines and nothing else "
        "(repeatable)",
    )


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
    _token_arguments(p)
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
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="the Ray cluster clients' engine => 'ray' runs on: local, auto, ray://host:10001 "
        "(default: none; such calls are refused). A Ray cluster has no authentication: keep it "
        "on a private network",
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


def deployment_tokens(given: list[str]) -> dict[str, tuple[str, ...]]:
    """``TOKEN=p1,p2`` arguments as {token: pipelines}."""
    tokens = {}
    for value in given:
        token, _, names = value.rpartition("=")  # a token may hold "=" (base64), a name not
        pipelines = tuple(n.strip() for n in names.split(",") if n.strip())
        if not token or not pipelines:
            raise SynthError(f"--deployment-token: give TOKEN=pipeline[,pipeline..], got {value!r}")
        tokens[token] = tokens.get(token, ()) + pipelines
    return tokens


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
    try:
        deployments = deployment_tokens(args.deployment_token)
    except SynthError as error:
        report(error)
        return EXIT_ERROR
    options = ServeOptions(
        host=args.host,
        port=args.port,
        quack_port=None if args.no_quack else args.quack_port,
        tokens=auth.Tokens(
            admin=admin,
            read_only=list(args.read_only_token),
            deployment=deployments,
        ),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        allow_files=list(args.allow_files) or None,
        max_rows=args.max_rows,
        statement_timeout=args.statement_timeout,
    )
    try:
        if args.ray:
            from duck_synth.distributed import cluster

            cluster.use(args.ray)
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
