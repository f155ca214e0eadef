"""The declarations: every function duck_synth adds to DuckDB (``BUILTIN``), and those planned
issues will add (``PLANNED``: their roles only, see __init__.py). sql/macros.sql and the README's
reference table are rendered from here (``python -m duck_synth.surface``)."""

from __future__ import annotations

from .. import options
from .function import READS, WRITES, Function, scalar, table, view

BUILTIN: tuple[Function, ...] = (
    table(
        "train", WRITES, "synth_train", ("name", "source"), options.TrainOptions, lists=("source",)
    ).about(
        "train('name', 'table or query', ...) -> one summary row. With session_key (and "
        "order_by, metadata) the rows are the steps of sessions: see duck_synth/sessions.py."
    ),
    table("recommend", READS, "synth_recommend", ("source",), options.RecommendOptions).about(
        "recommend('table or query' [, session_key]) -> the methods ranked for the data's "
        "shape: rank, method, applicable, reason, shape. train(..., method => 'auto') takes the "
        "first."
    ),
    table(
        "generate",
        READS,
        "synth_generate",
        ("model",),
        options.GenerateOptions,
        aliases={"where": "filter", "table": "table_name"},
        options_macro=True,
    ).about(
        "generate('model' | 'model@version', ...) -> synthetic rows with the training columns' "
        'types. "conditions" takes PostAmplify\'s JSON conditions (\'{"eq": {"fraud": 1}}\', '
        '...), ANDed to filter. "filter" is the pushed-down predicate (WHERE is a reserved word '
        'in DuckDB\'s parser; the quoted "where" is accepted as the same argument). Controls '
        "(duck_synth/controls.py): constraints (row rules, ANDed to the model's own), equalize "
        "=> 'column', rebalance => {'column': .., 'probabilities': {value: share}}, impute => "
        "[columns], fairness => {'target_column': .., 'sensitive_columns': [..]}, "
        "drop_unique_violation, unique_columns => [..], limit_strings. target counts the rows "
        "(sessions) that survive all of them. at_most => n caps the rows at n whatever the "
        "target would be (the rewrite sets it from a query's LIMIT). A database model (trained "
        "on a list of tables) returns one table: generate('m', \"table\" => 'flights' [, "
        "scale, seed]), its parents generated but not returned."
    ),
    table(
        "generate_tables",
        WRITES,
        "synth_generate_tables",
        ("model",),
        options.GenerateTablesOptions,
    ).about(
        "generate_tables('database model', scale, seed, prefix => 'syn_', filters => {'table': "
        "'predicate'}, seed_rows => {'root table': 'query'}, replace) -> one row per table "
        "written (prefix || table), parents first: fresh keys (PRIMARY KEY), every foreign key "
        "a generated parent's (REFERENCES). A filter narrows a table and its children follow; "
        "seed rows of a root table (their keys kept) get generated children. The parents are "
        "written in one transaction, each leaf child chunk by chunk: called again with the "
        "same arguments, a stopped run resumes (duck_synth/relational/)."
    ),
    table(
        "generate_into",
        WRITES,
        "synth_generate_into",
        ("table_name", "model"),
        options.GenerateIntoOptions,
        without=("seed_rows", "at_most", "table_name", "scale"),
        options_macro=True,
    ).about(
        "generate_into('table', 'model', <generate()'s arguments> [, engine => 'ray', workers "
        "=> n] [, path => 'folder']) -> one summary row. Appends batch by batch (batch_size "
        "rows, one transaction each) to the table, created with the model's types if missing; "
        "called again after an interruption with the same arguments, it resumes at the next "
        "batch (same rows as an uninterrupted run: no duplicate, no gap). Batch i's rows depend "
        "only on the seed, i and batch_size, on either engine: engine => 'ray' draws the "
        "batches on Ray workers (duck_synth/distributed/). path => writes one Parquet part per "
        "batch there, and the table is a view reading them. A statement that is only this call, "
        "run through duck_synth (session.sql, the CLI), runs outside the statement (see "
        "Session.sql) so DuckDB checkpoints between batches."
    ),
    view(
        "generations",
        """\
    SELECT generation_id, model, version, arguments, seed, rows_drawn, rows_passed,
           rows_returned, coalesce(rows_passed, rows_returned) / nullif(rows_drawn, 0)
               AS acceptance, seconds, created
    FROM synth.generations ORDER BY generation_id""",
    ).about(
        "generations() -> the generation log: what was asked, rows (sessions) drawn, passed and "
        "returned, and the acceptance rate (passed / drawn: the share of drawn rows that "
        "survived filters, constraints, unique values and quotas)."
    ),
    table("resample", READS, "synth_resample", ("source", "field"), options.ResampleOptions).about(
        "resample('table or query', 'column', condition => 'SQL', replace_values => [..] | "
        "model => 'm') -> the rows with the column replaced where condition holds (all rows "
        "without one): by values drawn from the list, or by the model given each row's other "
        "columns. A condition reading the column is drawn again until it no longer holds "
        "(duck_synth/resample.py)."
    ),
    table("synth_sql", READS, "synth_rewrite", ("sql_text",)).about(
        "synth_sql('any duck_synth SQL') -> its result, with the rewrite (filter pushdown) applied."
    ),
    view(
        "models",
        """\
    SELECT m.name, m.version, m.method, m.source, m.created, m.training_rows,
           json_array_length(m.columns) AS n_columns,
           CAST(json_extract(m.metrics, '$.privacy.epsilon') AS DOUBLE) AS epsilon,
           CAST(json_extract(m.metrics, '$.privacy.delta') AS DOUBLE) AS delta, m.options,
           m.metrics, m.format_version,
           coalesce((SELECT list(w.name ORDER BY w.name) FROM synth.workflows w
                     WHERE list_contains(CAST(w.models AS VARCHAR[]), m.name)), [])
               AS workflows,
           json_extract_string(m.metrics, '$.fingerprint') AS fingerprint,
           CAST(json_extract(m.metrics, '$.reproducible') AS BOOLEAN) AS reproducible,
           json_extract_string(m.metrics, '$.from_model') AS parent
    FROM synth.models m WHERE m.options->>'component_of' IS NULL
    ORDER BY m.name, m.version""",
    ).about(
        "models() -> the trained model versions (weights left out), with the workflows that use "
        "them; fingerprint: the training data (as the networks saw it) and options, seed "
        "included; reproducible: the same fingerprint gives the same weights and rows (false "
        "with epsilon, whose noise comes from the OS, and on a GPU); parent: the version a "
        "continued training (from_model) started from."
    ),
    table(
        "create_workflow",
        WRITES,
        "synth_create_workflow",
        ("name", "sql_text"),
        options.WorkflowOptions,
    ).about(
        "create_workflow('name', 'query' [, parameters => {'n': 1000}]) -> one row. Saves the "
        "query (rewrite applied) as table macro name(n := 1000): FROM name() runs it, FROM "
        "name(n := 5) with other arguments."
    ),
    table("drop_workflow", WRITES, "synth_drop_workflow", ("name",)).about(
        "drop_workflow('name') -> what was dropped."
    ),
    view(
        "workflows",
        """\
    SELECT name, CAST(models AS VARCHAR[]) AS models, parameters, sql, runs_as, created
    FROM synth.workflows ORDER BY name""",
    ).about("workflows() -> the saved workflows (never running one)."),
    table("describe_model", READS, "synth_describe", ("model",)).about(
        "describe_model('model[@version]') -> one row per column: kind, type, protected statistics."
    ),
    table("drop_model", WRITES, "synth_drop", ("model",), options.DropModelOptions).about(
        "drop_model('model' [, version]) -> what was dropped."
    ),
    view(
        "checkpoints",
        """\
    SELECT c.run_id, c.model, r.status, c.part, c.epochs, c.bytes, c.created
    FROM synth.checkpoints c LEFT JOIN synth.runs r USING (run_id) ORDER BY c.run_id""",
    ).about(
        "checkpoints() -> the saved states of trainings that did not finish (an epoch's end, "
        "every checkpoint_every seconds): train(.., resume => true) continues the model's "
        "latest, resume_run => run_id a given one, to the weights an uninterrupted run gets."
    ),
    table(
        "drop_checkpoints",
        WRITES,
        "synth_drop_checkpoints",
        (),
        options.DropCheckpointsOptions,
    ).about(
        "drop_checkpoints([model => 'name']) -> how many were dropped (every model's, or one's)."
    ),
    table("export_model", WRITES, "synth_export", ("model", "path")).about(
        "export_model('model[@version]', 'file.safetensors') -> the file written: the weights, "
        "and the model's JSON in its metadata."
    ),
    table("import_model", WRITES, "synth_import", ("path",), options.ImportModelOptions).about(
        "import_model('file' [, name]) -> the model version added (the file is checked whole "
        "first)."
    ),
    table("validate", READS, "synth_validate", ("model", "synthetic")).about(
        "validate('model[@version]', 'table or query') -> one row per (column, rule) checked "
        "against what the model learned: passed, violations, rows, share, example, detail."
    ),
    table(
        "evaluate",
        READS,
        "synth_evaluate",
        ("real_data", "synthetic_data"),
        options.EvaluateOptions,
        lists=("real_data", "synthetic_data"),
    ).about(
        "evaluate('real', 'synthetic' [, holdout, target, columns, sample, seed, sensitive]) -> "
        "one row per metric (metric, columns, value, detail): fidelity computed in SQL, plus "
        "overall scores; privacy and a membership-inference attack with a holdout (attribute "
        "inference on the sensitive column too), utility (train on synthetic, test on the "
        "holdout) with a target. With session_key and order_by: session, per-session "
        "aggregate and step-band metrics, and privacy over whole sessions."
    ),
    table(
        "report",
        WRITES,
        "synth_report",
        ("real_data", "synthetic_data"),
        options.ReportOptions,
        lists=("real_data", "synthetic_data"),
    ).about(
        "report('real', 'synthetic' [, holdout, path, columns, bins, sensitive, session_key, "
        "order_by]) -> one row (path, columns, plots, bytes): a self-contained HTML file with "
        "distribution overlays, association heatmaps, the metric table and, with a holdout, "
        "privacy figures and attacks. With session_key and order_by the metric table has "
        "evaluate()'s session and step rows."
    ),
    table(
        "subset", WRITES, "synth_subset", ("tables",), options.SubsetOptions, lists=("tables",)
    ).about(
        "subset(['tables'], fraction => share | filter => {'table': 'SQL'} [, prefix, seed, "
        "relations, replace]) -> one row per table (table, written, rows, source_rows, "
        "orphans). Writes prefix || table for each table, in one transaction: the rows a "
        "fraction (of the root tables, by a hash of each row and the seed) or the filters keep, "
        "the children of kept rows, and the parents every kept key points at, so every key "
        "resolves; orphan rows are left out and counted (duck_synth/subset.py)."
    ),
    scalar(
        "pseudonymize", "value, key", "    synth_pseudonymize(CAST(value AS VARCHAR), key)"
    ).about(
        "Keyed transforms (duck_synth/transforms.py): HMAC-SHA256 under a secret key, so the "
        "same value and key give the same output in every table; without the key nothing can "
        "be reversed or linked. pseudonymize(value, key) -> a 20-hex-digit pseudonym (NULL "
        "stays NULL)."
    ),
    scalar("mask", "value, key", "    synth_mask(CAST(value AS VARCHAR), key)").about(
        "mask(value, key) -> same length and character classes (digit -> digit, letter -> "
        "letter of the same case, the rest kept)."
    ),
    scalar(
        "shift_date",
        "value, session, key, max_days := 30",
        "    value + CAST(synth_date_offset(CAST(session AS VARCHAR), key, max_days) AS INTEGER)",
    ).about(
        "shift_date(date, session, key [, max_days]): every value of a session moved by the same "
        "number of days, drawn from [-max_days, max_days] by the session's HMAC."
    ),
    scalar(
        "shift_timestamp",
        "value, session, key, max_days := 30",
        "    value + to_days(CAST(synth_date_offset(CAST(session AS VARCHAR), key, max_days) "
        "AS INTEGER))",
    ).about(
        "shift_timestamp(timestamp, session, key [, max_days]): as shift_date, for timestamps."
    ),
    table(
        "create_pipeline",
        WRITES,
        "synth_create_pipeline",
        ("name",),
        options.PipelineOptions,
    ).about(
        "create_pipeline('p', steps => [{'generate': 'model' [, 'target': n]}, {'score': "
        "'user model'}, {'sql': 'SELECT .. FROM input'}, {'validation': 'name', 'check': "
        "'predicate' [, 'alert': share]}]) | split => {'random': {'a': 2, 'b': 1} [, "
        "'hash_key': 'column']} | {'key': 'column', 'arms': {'value': 'a'} [, 'default': 'b']} "
        "| {'champion': 'a', 'challengers': ['b']}) -> the version added. Every change of a "
        "pipeline is a new version; model and arm names are pinned to their versions then. A "
        "pipeline runs read-only whoever calls it (duck_synth/pipelines/)."
    ),
    table(
        "add_pipeline_step", WRITES, "synth_add_pipeline_step", ("name", "step"), structs=("step",)
    ).about("add_pipeline_step('p', {'sql': '..'}) -> a new version, the step appended."),
    table(
        "replace_pipeline_step",
        WRITES,
        "synth_replace_pipeline_step",
        ("name", "step_index", "step"),
        structs=("step",),
    ).about("replace_pipeline_step('p', index, step) -> a new version (steps count from 1)."),
    table(
        "remove_pipeline_step",
        WRITES,
        "synth_remove_pipeline_step",
        ("name", "step_index"),
    ).about("remove_pipeline_step('p', index) -> a new version, that step removed."),
    table("clear_pipeline_steps", WRITES, "synth_clear_pipeline_steps", ("name",)).about(
        "clear_pipeline_steps('p') -> a new version with no step."
    ),
    view(
        "pipelines",
        """\
    SELECT p.name, p.version, p.steps, p.split, p.change, p.created,
           coalesce(d.version = p.version, false) AS deployed
    FROM synth.pipelines p LEFT JOIN synth.deployments d ON d.name = p.name
    ORDER BY p.name, p.version""",
    ).about(
        "pipelines() -> every version of every pipeline: its steps or split, what changed, and "
        "whether it is the deployed one."
    ),
    table("deploy", WRITES, "synth_deploy", ("name",), options.DeployOptions).about(
        "deploy('p' | 'p@2' [, keep_days => 30, keep_rows => 1000000, rows_per_call => 1000]) -> "
        "that version callable as infer('p'); its calls are logged (a row per arm a call ran), "
        "kept keep_days and at most keep_rows rows, each call's first rows_per_call input and "
        "output rows."
    ),
    table("undeploy", WRITES, "synth_undeploy", ("name",)).about(
        "undeploy('p') -> infer('p') refused from then on."
    ),
    table("infer", READS, "synth_infer", ("name",), options.InferOptions).about(
        "infer('p', input => 'query' | 'table' | [{'column': value, ..}] [, timeout => 15]) -> "
        "per output row: time, arm (pipeline@version), in.<column> (the input row it came "
        "from, when the steps keep it), out.<column>, check_failures (the validations it "
        "failed). Logged; stopped and logged as timeout after timeout seconds."
    ),
    table(
        "logs",
        READS,
        "synth_logs",
        ("name",),
        options.LogsOptions,
        aliases={"end": "until", "limit": "max_rows"},
    ).about(
        "logs('p' [, start, until, max_rows => 100, failures_only]) -> the newest calls of a "
        "deployment in the window, oldest first: time, call_id, version, arm, shadow, status "
        "(ok, error, timeout, cancelled), error, seconds, rows in and out, check_failures, "
        "failures and alerts per validation, the logged rows in and out (JSON). COPY (FROM "
        "logs('p', max_rows => 1000000)) TO 'file' exports it. \"end\" and \"limit\" (quoted: "
        "reserved words in DuckDB's parser) are the same as until and max_rows."
    ),
    table(
        "register_model",
        WRITES,
        "synth_register_model",
        ("name", "path"),
        options.RegisterModelOptions,
    ).about(
        "register_model('name', 'file.pt2', inputs => ['column', ..], outputs => ['name', ..]) "
        "-> the version added (admin only; the file within the server's --allow-files). The "
        "file is a torch.export program (torch.export.save) taking one float32 tensor (rows, "
        "inputs) and returning (rows, outputs), or (rows) for one output. It is checked before "
        "anything in it runs: no pickle but the sample inputs' tensors, plain shape "
        "expressions, and only the ATen operators of duck_synth/pipelines/operators.py (custom "
        "operators and Python callbacks refused); then loaded and run once on zeros."
    ),
    view(
        "user_models",
        """\
    SELECT name, version, CAST(inputs AS VARCHAR[]) AS inputs,
           CAST(outputs AS VARCHAR[]) AS outputs, json_array_length(operators) AS n_operators,
           sha256, octet_length(program) AS bytes, created
    FROM synth.user_models ORDER BY name, version""",
    ).about("user_models() -> the registered user models' versions (the programs left out)."),
    scalar(
        "score",
        "model, record",
        "    synth_score(CAST(model AS VARCHAR), CAST(to_json(record) AS VARCHAR))",
    ).about(
        "score('model' | 'model@version', row) -> MAP(VARCHAR, DOUBLE): a registered user "
        "model's outputs for a row (a struct: the table's alias, or {'carat': carat, ..}) read "
        "from its input columns; score('fraud_clf', t)['p_fraud']. NULL inputs give NULL."
    ),
    table(
        "logged_rows",
        READS,
        "synth_logged_rows",
        ("name",),
        options.LoggedRowsOptions,
        aliases={"end": "until", "limit": "max_rows"},
    ).about(
        "logged_rows('p' [, arm => 'p2@1', side => 'out' | 'in', start, until, max_rows => "
        "1000]) -> the rows the log kept of the newest max_rows arm runs, one row each (call_id, "
        "arm, time, then its columns, typed from the JSON): evaluate('real', 'SELECT * EXCLUDE "
        "(call_id, arm, time) FROM logged_rows(..)') compares the arms of a split or shadow."
    ),
    view(
        "runs",
        """\
    SELECT run_id, model, version, method, status, progress, epochs, seconds,
           CAST(json_extract(losses, '$[-1]') AS JSON) AS last_losses, started, finished, error
    FROM synth.runs ORDER BY run_id""",
    ).about(
        "runs() -> the trainings, newest last: status (running, succeeded, failed, cancelled, "
        "interrupted), progress (share done, written about once a second while it runs), "
        "epochs, seconds, the last epoch's losses and the error of a failed run. A client of a "
        "server follows a training here; cancelling its statement stops it (the run becomes "
        "cancelled, no model)."
    ),
)

# UDFs that no table function of the surface calls by name: a saved workflow's macro calls
# synth_workflow(name, arguments, hidden) (workflows.py); the keyed transforms' scalar UDFs
# (transforms.py) and score()'s (pipelines/user_models.py) are typed, and a read-only caller may
# call them directly.
WORKFLOW_UDF = ("synth_workflow", 3)
TRANSFORM_UDFS = ("synth_pseudonymize", "synth_mask", "synth_date_offset")
SCORE_UDF = "synth_score"

# Functions that planned issues add, declared before their code so that the server's access rule
# (a read-only token is refused the writing ones) stands from the start. Issue 24 (Ray) adds
# options (generate_into's engine and path, connect's ray), no function.
PLANNED: tuple[Function, ...] = ()
