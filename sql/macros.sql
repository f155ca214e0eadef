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

-- train('name', 'table or query', ...) -> one summary row. With session_key (and order_by,
-- metadata) the rows are the steps of sessions: see duck_synth/sessions.py.
CREATE OR REPLACE MACRO train(
    name, source,
    method := NULL, columns := NULL, exclude := NULL, encoding := NULL, seed := NULL,
    epochs := NULL, max_time := NULL, batch_size := NULL, validation_share := NULL, nrows := NULL,
    strip_strings := NULL, empty_strings_as_null := NULL, rare_threshold := NULL, device := NULL,
    threads := NULL, session_key := NULL, order_by := NULL, metadata := NULL, constraints := NULL,
    epsilon := NULL, delta := NULL, max_grad_norm := NULL, noise_multiplier := NULL,
    dp_statistics_share := NULL, n_parents := NULL, n_bins := NULL, max_cat := NULL,
    bin_strategy := NULL, sample_parents := NULL, relations := NULL, keep_orphans := NULL,
    checkpoint_every := NULL, resume := NULL, resume_run := NULL, from_model := NULL,
    engine := NULL, workers := NULL
) AS TABLE
    FROM query(synth_call('synth_train', [CAST(name AS VARCHAR), CASE WHEN typeof(source) LIKE '%[]' THEN CAST(to_json(source) AS VARCHAR) ELSE CAST(source AS VARCHAR) END, CAST(to_json({
    'method': method, 'columns': columns, 'exclude': exclude, 'encoding': encoding, 'seed': seed,
    'epochs': epochs, 'max_time': max_time, 'batch_size': batch_size,
    'validation_share': validation_share, 'nrows': nrows, 'strip_strings': strip_strings,
    'empty_strings_as_null': empty_strings_as_null, 'rare_threshold': rare_threshold,
    'device': device, 'threads': threads, 'session_key': session_key, 'order_by': order_by,
    'metadata': metadata, 'constraints': constraints, 'epsilon': epsilon, 'delta': delta,
    'max_grad_norm': max_grad_norm, 'noise_multiplier': noise_multiplier,
    'dp_statistics_share': dp_statistics_share, 'n_parents': n_parents, 'n_bins': n_bins,
    'max_cat': max_cat, 'bin_strategy': bin_strategy, 'sample_parents': sample_parents,
    'relations': relations, 'keep_orphans': keep_orphans, 'checkpoint_every': checkpoint_every,
    'resume': resume, 'resume_run': resume_run, 'from_model': from_model, 'engine': engine,
    'workers': workers
}) AS VARCHAR)]));

-- recommend('table or query' [, session_key]) -> the methods ranked for the data's shape: rank,
-- method, applicable, reason, shape. train(..., method => 'auto') takes the first.
CREATE OR REPLACE MACRO recommend(source, session_key := NULL) AS TABLE
    FROM query(synth_call('synth_recommend', [CAST(source AS VARCHAR), CAST(to_json({
    'session_key': session_key
}) AS VARCHAR)]));

-- generate('model' | 'model@version', ...) -> synthetic rows with the training columns' types.
-- "conditions" takes PostAmplify's JSON conditions ('{"eq": {"fraud": 1}}', ...), ANDed to
-- filter. "filter" is the pushed-down predicate (WHERE is a reserved word in DuckDB's parser;
-- the quoted "where" is accepted as the same argument). Controls (duck_synth/controls.py):
-- constraints (row rules, ANDed to the model's own), equalize => 'column', rebalance =>
-- {'column': .., 'probabilities': {value: share}}, impute => [columns], fairness =>
-- {'target_column': .., 'sensitive_columns': [..]}, drop_unique_violation, unique_columns =>
-- [..], limit_strings. target counts the rows (sessions) that survive all of them. at_most => n
-- caps the rows at n whatever the target would be (the rewrite sets it from a query's LIMIT). A
-- database model (trained on a list of tables) returns one table: generate('m', "table" =>
-- 'flights' [, scale, seed]), its parents generated but not returned.
CREATE OR REPLACE MACRO generate_options(
    target := NULL, magnitude := NULL, filter := NULL, "where" := NULL, conditions := NULL,
    seed := NULL, temperature := NULL, top_p := NULL, batch_size := NULL, seed_rows := NULL,
    constraints := NULL, equalize := NULL, rebalance := NULL, impute := NULL, fairness := NULL,
    drop_unique_violation := NULL, unique_columns := NULL, limit_strings := NULL, at_most := NULL,
    table_name := NULL, "table" := NULL, scale := NULL
) AS to_json({
    'target': target, 'magnitude': magnitude, 'filter': coalesce(filter, "where"),
    'conditions': CAST(conditions AS VARCHAR), 'seed': seed, 'temperature': temperature,
    'top_p': top_p, 'batch_size': batch_size, 'seed_rows': seed_rows, 'constraints': constraints,
    'equalize': equalize, 'rebalance': rebalance, 'impute': impute, 'fairness': fairness,
    'drop_unique_violation': drop_unique_violation, 'unique_columns': unique_columns,
    'limit_strings': limit_strings, 'at_most': at_most, 'table_name': coalesce(table_name, "table"),
    'scale': scale
});
CREATE OR REPLACE MACRO generate(
    model,
    target := NULL, magnitude := NULL, filter := NULL, "where" := NULL, conditions := NULL,
    seed := NULL, temperature := NULL, top_p := NULL, batch_size := NULL, seed_rows := NULL,
    constraints := NULL, equalize := NULL, rebalance := NULL, impute := NULL, fairness := NULL,
    drop_unique_violation := NULL, unique_columns := NULL, limit_strings := NULL, at_most := NULL,
    table_name := NULL, "table" := NULL, scale := NULL
) AS TABLE
    FROM query(synth_call('synth_generate', [CAST(model AS VARCHAR), CAST(generate_options(
    target := target, magnitude := magnitude, filter := filter, "where" := "where",
    conditions := conditions, seed := seed, temperature := temperature, top_p := top_p,
    batch_size := batch_size, seed_rows := seed_rows, constraints := constraints,
    equalize := equalize, rebalance := rebalance, impute := impute, fairness := fairness,
    drop_unique_violation := drop_unique_violation, unique_columns := unique_columns,
    limit_strings := limit_strings, at_most := at_most, table_name := table_name,
    "table" := "table", scale := scale
) AS VARCHAR)]));

-- generate_tables('database model', scale, seed, prefix => 'syn_', filters => {'table':
-- 'predicate'}, seed_rows => {'root table': 'query'}, replace) -> one row per table written
-- (prefix || table), parents first: fresh keys (PRIMARY KEY), every foreign key a generated
-- parent's (REFERENCES). A filter narrows a table and its children follow; seed rows of a root
-- table (their keys kept) get generated children. The parents are written in one transaction,
-- each leaf child chunk by chunk: called again with the same arguments, a stopped run resumes
-- (duck_synth/relational/).
CREATE OR REPLACE MACRO generate_tables(
    model,
    scale := NULL, seed := NULL, prefix := NULL, filters := NULL, seed_rows := NULL,
    replace := NULL, temperature := NULL, batch_size := NULL
) AS TABLE
    FROM query(synth_call('synth_generate_tables', [CAST(model AS VARCHAR), CAST(to_json({
    'scale': scale, 'seed': seed, 'prefix': prefix, 'filters': filters, 'seed_rows': seed_rows,
    'replace': replace, 'temperature': temperature, 'batch_size': batch_size
}) AS VARCHAR)]));

-- generate_into('table', 'model', <generate()'s arguments> [, engine => 'ray', workers => n] [,
-- path => 'folder']) -> one summary row. Appends batch by batch (batch_size rows, one
-- transaction each) to the table, created with the model's types if missing; called again after
-- an interruption with the same arguments, it resumes at the next batch (same rows as an
-- uninterrupted run: no duplicate, no gap). Batch i's rows depend only on the seed, i and
-- batch_size, on either engine: engine => 'ray' draws the batches on Ray workers
-- (duck_synth/distributed/). path => writes one Parquet part per batch there, and the table is a
-- view reading them. A statement that is only this call, run through duck_synth (session.sql,
-- the CLI), runs outside the statement (see Session.sql) so DuckDB checkpoints between batches.
CREATE OR REPLACE MACRO generate_into_options(
    target := NULL, magnitude := NULL, filter := NULL, conditions := NULL, seed := NULL,
    temperature := NULL, top_p := NULL, batch_size := NULL, constraints := NULL, equalize := NULL,
    rebalance := NULL, impute := NULL, fairness := NULL, drop_unique_violation := NULL,
    unique_columns := NULL, limit_strings := NULL, engine := NULL, workers := NULL, path := NULL
) AS to_json({
    'target': target, 'magnitude': magnitude, 'filter': filter,
    'conditions': CAST(conditions AS VARCHAR), 'seed': seed, 'temperature': temperature,
    'top_p': top_p, 'batch_size': batch_size, 'constraints': constraints, 'equalize': equalize,
    'rebalance': rebalance, 'impute': impute, 'fairness': fairness,
    'drop_unique_violation': drop_unique_violation, 'unique_columns': unique_columns,
    'limit_strings': limit_strings, 'engine': engine, 'workers': workers, 'path': path
});
CREATE OR REPLACE MACRO generate_into(
    table_name, model,
    target := NULL, magnitude := NULL, filter := NULL, conditions := NULL, seed := NULL,
    temperature := NULL, top_p := NULL, batch_size := NULL, constraints := NULL, equalize := NULL,
    rebalance := NULL, impute := NULL, fairness := NULL, drop_unique_violation := NULL,
    unique_columns := NULL, limit_strings := NULL, engine := NULL, workers := NULL, path := NULL
) AS TABLE
    FROM query(synth_call('synth_generate_into', [CAST(table_name AS VARCHAR), CAST(model AS VARCHAR), CAST(generate_into_options(
    target := target, magnitude := magnitude, filter := filter, conditions := conditions,
    seed := seed, temperature := temperature, top_p := top_p, batch_size := batch_size,
    constraints := constraints, equalize := equalize, rebalance := rebalance, impute := impute,
    fairness := fairness, drop_unique_violation := drop_unique_violation,
    unique_columns := unique_columns, limit_strings := limit_strings, engine := engine,
    workers := workers, path := path
) AS VARCHAR)]));

-- generations() -> the generation log: what was asked, rows (sessions) drawn, passed and
-- returned, and the acceptance rate (passed / drawn: the share of drawn rows that survived
-- filters, constraints, unique values and quotas).
CREATE OR REPLACE MACRO generations() AS TABLE
    SELECT generation_id, model, version, arguments, seed, rows_drawn, rows_passed,
           rows_returned, coalesce(rows_passed, rows_returned) / nullif(rows_drawn, 0)
               AS acceptance, seconds, created
    FROM synth.generations ORDER BY generation_id;

-- resample('table or query', 'column', condition => 'SQL', replace_values => [..] | model =>
-- 'm') -> the rows with the column replaced where condition holds (all rows without one): by
-- values drawn from the list, or by the model given each row's other columns. A condition
-- reading the column is drawn again until it no longer holds (duck_synth/resample.py).
CREATE OR REPLACE MACRO resample(
    source, field,
    condition := NULL, replace_values := NULL, model := NULL, seed := NULL, temperature := NULL
) AS TABLE
    FROM query(synth_call('synth_resample', [CAST(source AS VARCHAR), CAST(field AS VARCHAR), CAST(to_json({
    'condition': condition, 'replace_values': replace_values, 'model': model, 'seed': seed,
    'temperature': temperature
}) AS VARCHAR)]));

-- synth_sql('any duck_synth SQL') -> its result, with the rewrite (filter pushdown) applied.
CREATE OR REPLACE MACRO synth_sql(sql_text) AS TABLE
    FROM query(synth_call('synth_rewrite', [CAST(sql_text AS VARCHAR)]));

-- models() -> the trained model versions (weights left out), with the workflows that use them;
-- fingerprint: the training data (as the networks saw it) and options, seed included;
-- reproducible: the same fingerprint gives the same weights and rows (false with epsilon, whose
-- noise comes from the OS, and on a GPU); parent: the version a continued training (from_model)
-- started from.
CREATE OR REPLACE MACRO models() AS TABLE
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
    ORDER BY m.name, m.version;

-- create_workflow('name', 'query' [, parameters => {'n': 1000}]) -> one row. Saves the query
-- (rewrite applied) as table macro name(n := 1000): FROM name() runs it, FROM name(n := 5) with
-- other arguments.
CREATE OR REPLACE MACRO create_workflow(name, sql_text, parameters := NULL) AS TABLE
    FROM query(synth_call('synth_create_workflow', [CAST(name AS VARCHAR), CAST(sql_text AS VARCHAR), CAST(to_json({
    'parameters': parameters
}) AS VARCHAR)]));

-- drop_workflow('name') -> what was dropped.
CREATE OR REPLACE MACRO drop_workflow(name) AS TABLE
    FROM query(synth_call('synth_drop_workflow', [CAST(name AS VARCHAR)]));

-- workflows() -> the saved workflows (never running one).
CREATE OR REPLACE MACRO workflows() AS TABLE
    SELECT name, CAST(models AS VARCHAR[]) AS models, parameters, sql, runs_as, created
    FROM synth.workflows ORDER BY name;

-- describe_model('model[@version]') -> one row per column: kind, type, protected statistics.
CREATE OR REPLACE MACRO describe_model(model) AS TABLE
    FROM query(synth_call('synth_describe', [CAST(model AS VARCHAR)]));

-- drop_model('model' [, version]) -> what was dropped.
CREATE OR REPLACE MACRO drop_model(model, version := NULL) AS TABLE
    FROM query(synth_call('synth_drop', [CAST(model AS VARCHAR), CAST(to_json({
    'version': version
}) AS VARCHAR)]));

-- checkpoints() -> the saved states of trainings that did not finish (an epoch's end, every
-- checkpoint_every seconds): train(.., resume => true) continues the model's latest, resume_run
-- => run_id a given one, to the weights an uninterrupted run gets.
CREATE OR REPLACE MACRO checkpoints() AS TABLE
    SELECT c.run_id, c.model, r.status, c.part, c.epochs, c.bytes, c.created
    FROM synth.checkpoints c LEFT JOIN synth.runs r USING (run_id) ORDER BY c.run_id;

-- drop_checkpoints([model => 'name']) -> how many were dropped (every model's, or one's).
CREATE OR REPLACE MACRO drop_checkpoints(model := NULL) AS TABLE
    FROM query(synth_call('synth_drop_checkpoints', [CAST(to_json({
    'model': model
}) AS VARCHAR)]));

-- export_model('model[@version]', 'file.safetensors') -> the file written: the weights, and the
-- model's JSON in its metadata.
CREATE OR REPLACE MACRO export_model(model, path) AS TABLE
    FROM query(synth_call('synth_export', [CAST(model AS VARCHAR), CAST(path AS VARCHAR)]));

-- import_model('file' [, name]) -> the model version added (the file is checked whole first).
CREATE OR REPLACE MACRO import_model(path, name := NULL) AS TABLE
    FROM query(synth_call('synth_import', [CAST(path AS VARCHAR), CAST(to_json({
    'name': name
}) AS VARCHAR)]));

-- validate('model[@version]', 'table or query') -> one row per (column, rule) checked against
-- what the model learned: passed, violations, rows, share, example, detail.
CREATE OR REPLACE MACRO validate(model, synthetic) AS TABLE
    FROM query(synth_call('synth_validate', [CAST(model AS VARCHAR), CAST(synthetic AS VARCHAR)]));

-- evaluate('real', 'synthetic' [, holdout, target, columns, sample, seed, sensitive]) -> one row
-- per metric (metric, columns, value, detail): fidelity computed in SQL, plus overall scores;
-- privacy and a membership-inference attack with a holdout (attribute inference on the sensitive
-- column too), utility (train on synthetic, test on the holdout) with a target. With session_key
-- and order_by: session, per-session aggregate and step-band metrics, and privacy over whole
-- sessions.
CREATE OR REPLACE MACRO evaluate(
    real_data, synthetic_data,
    holdout := NULL, target := NULL, columns := NULL, sample := NULL, seed := NULL,
    session_key := NULL, order_by := NULL, sensitive := NULL, relations := NULL
) AS TABLE
    FROM query(synth_call('synth_evaluate', [CASE WHEN typeof(real_data) LIKE '%[]' THEN CAST(to_json(real_data) AS VARCHAR) ELSE CAST(real_data AS VARCHAR) END, CASE WHEN typeof(synthetic_data) LIKE '%[]' THEN CAST(to_json(synthetic_data) AS VARCHAR) ELSE CAST(synthetic_data AS VARCHAR) END, CAST(to_json({
    'holdout': holdout, 'target': target, 'columns': columns, 'sample': sample, 'seed': seed,
    'session_key': session_key, 'order_by': order_by, 'sensitive': sensitive,
    'relations': relations
}) AS VARCHAR)]));

-- report('real', 'synthetic' [, holdout, path, columns, bins, sensitive, session_key, order_by])
-- -> one row (path, columns, plots, bytes): a self-contained HTML file with distribution
-- overlays, association heatmaps, the metric table and, with a holdout, privacy figures and
-- attacks. With session_key and order_by the metric table has evaluate()'s session and step
-- rows.
CREATE OR REPLACE MACRO report(
    real_data, synthetic_data,
    path := NULL, holdout := NULL, columns := NULL, bins := NULL, sensitive := NULL,
    relations := NULL, session_key := NULL, order_by := NULL
) AS TABLE
    FROM query(synth_call('synth_report', [CASE WHEN typeof(real_data) LIKE '%[]' THEN CAST(to_json(real_data) AS VARCHAR) ELSE CAST(real_data AS VARCHAR) END, CASE WHEN typeof(synthetic_data) LIKE '%[]' THEN CAST(to_json(synthetic_data) AS VARCHAR) ELSE CAST(synthetic_data AS VARCHAR) END, CAST(to_json({
    'path': path, 'holdout': holdout, 'columns': columns, 'bins': bins, 'sensitive': sensitive,
    'relations': relations, 'session_key': session_key, 'order_by': order_by
}) AS VARCHAR)]));

-- subset(['tables'], fraction => share | filter => {'table': 'SQL'} [, prefix, seed, relations,
-- replace]) -> one row per table (table, written, rows, source_rows, orphans). Writes prefix ||
-- table for each table, in one transaction: the rows a fraction (of the root tables, by a hash
-- of each row and the seed) or the filters keep, the children of kept rows, and the parents
-- every kept key points at, so every key resolves; orphan rows are left out and counted
-- (duck_synth/subset.py).
CREATE OR REPLACE MACRO subset(
    tables,
    fraction := NULL, filter := NULL, prefix := NULL, seed := NULL, relations := NULL,
    replace := NULL
) AS TABLE
    FROM query(synth_call('synth_subset', [CASE WHEN typeof(tables) LIKE '%[]' THEN CAST(to_json(tables) AS VARCHAR) ELSE CAST(tables AS VARCHAR) END, CAST(to_json({
    'fraction': fraction, 'filter': filter, 'prefix': prefix, 'seed': seed, 'relations': relations,
    'replace': replace
}) AS VARCHAR)]));

-- Keyed transforms (duck_synth/transforms.py): HMAC-SHA256 under a secret key, so the same value
-- and key give the same output in every table; without the key nothing can be reversed or
-- linked. pseudonymize(value, key) -> a 20-hex-digit pseudonym (NULL stays NULL).
CREATE OR REPLACE MACRO pseudonymize(value, key) AS
    synth_pseudonymize(CAST(value AS VARCHAR), key);

-- mask(value, key) -> same length and character classes (digit -> digit, letter -> letter of the
-- same case, the rest kept).
CREATE OR REPLACE MACRO mask(value, key) AS
    synth_mask(CAST(value AS VARCHAR), key);

-- shift_date(date, session, key [, max_days]): every value of a session moved by the same number
-- of days, drawn from [-max_days, max_days] by the session's HMAC.
CREATE OR REPLACE MACRO shift_date(value, session, key, max_days := 30) AS
    value + CAST(synth_date_offset(CAST(session AS VARCHAR), key, max_days) AS INTEGER);

-- shift_timestamp(timestamp, session, key [, max_days]): as shift_date, for timestamps.
CREATE OR REPLACE MACRO shift_timestamp(value, session, key, max_days := 30) AS
    value + to_days(CAST(synth_date_offset(CAST(session AS VARCHAR), key, max_days) AS INTEGER));

-- create_pipeline('p', steps => [{'generate': 'model' [, 'target': n]}, {'score': 'user model'},
-- {'sql': 'SELECT .. FROM input'}, {'validation': 'name', 'check': 'predicate' [, 'alert':
-- share]}]) | split => {'random': {'a': 2, 'b': 1} [, 'hash_key': 'column']} | {'key': 'column',
-- 'arms': {'value': 'a'} [, 'default': 'b']} | {'champion': 'a', 'challengers': ['b']}) -> the
-- version added. Every change of a pipeline is a new version; model and arm names are pinned to
-- their versions then. A pipeline runs read-only whoever calls it (duck_synth/pipelines/).
CREATE OR REPLACE MACRO create_pipeline(name, steps := NULL, split := NULL) AS TABLE
    FROM query(synth_call('synth_create_pipeline', [CAST(name AS VARCHAR), CAST(to_json({
    'steps': steps, 'split': split
}) AS VARCHAR)]));

-- add_pipeline_step('p', {'sql': '..'}) -> a new version, the step appended.
CREATE OR REPLACE MACRO add_pipeline_step(name, step) AS TABLE
    FROM query(synth_call('synth_add_pipeline_step', [CAST(name AS VARCHAR), CAST(to_json(step) AS VARCHAR)]));

-- replace_pipeline_step('p', index, step) -> a new version (steps count from 1).
CREATE OR REPLACE MACRO replace_pipeline_step(name, step_index, step) AS TABLE
    FROM query(synth_call('synth_replace_pipeline_step', [CAST(name AS VARCHAR), CAST(step_index AS VARCHAR), CAST(to_json(step) AS VARCHAR)]));

-- remove_pipeline_step('p', index) -> a new version, that step removed.
CREATE OR REPLACE MACRO remove_pipeline_step(name, step_index) AS TABLE
    FROM query(synth_call('synth_remove_pipeline_step', [CAST(name AS VARCHAR), CAST(step_index AS VARCHAR)]));

-- clear_pipeline_steps('p') -> a new version with no step.
CREATE OR REPLACE MACRO clear_pipeline_steps(name) AS TABLE
    FROM query(synth_call('synth_clear_pipeline_steps', [CAST(name AS VARCHAR)]));

-- pipelines() -> every version of every pipeline: its steps or split, what changed, and whether
-- it is the deployed one.
CREATE OR REPLACE MACRO pipelines() AS TABLE
    SELECT p.name, p.version, p.steps, p.split, p.change, p.created,
           coalesce(d.version = p.version, false) AS deployed
    FROM synth.pipelines p LEFT JOIN synth.deployments d ON d.name = p.name
    ORDER BY p.name, p.version;

-- deploy('p' | 'p@2' [, keep_days => 30, keep_rows => 1000000, rows_per_call => 1000]) -> that
-- version callable as infer('p'); its calls are logged (a row per arm a call ran), kept
-- keep_days and at most keep_rows rows, each call's first rows_per_call input and output rows.
CREATE OR REPLACE MACRO deploy(
    name,
    keep_days := NULL, keep_rows := NULL, rows_per_call := NULL
) AS TABLE
    FROM query(synth_call('synth_deploy', [CAST(name AS VARCHAR), CAST(to_json({
    'keep_days': keep_days, 'keep_rows': keep_rows, 'rows_per_call': rows_per_call
}) AS VARCHAR)]));

-- undeploy('p') -> infer('p') refused from then on.
CREATE OR REPLACE MACRO undeploy(name) AS TABLE
    FROM query(synth_call('synth_undeploy', [CAST(name AS VARCHAR)]));

-- infer('p', input => 'query' | 'table' | [{'column': value, ..}] [, timeout => 15]) -> per
-- output row: time, arm (pipeline@version), in.<column> (the input row it came from, when the
-- steps keep it), out.<column>, check_failures (the validations it failed). Logged; stopped and
-- logged as timeout after timeout seconds.
CREATE OR REPLACE MACRO infer(name, input := NULL, timeout := NULL) AS TABLE
    FROM query(synth_call('synth_infer', [CAST(name AS VARCHAR), CAST(to_json({
    'input': input, 'timeout': timeout
}) AS VARCHAR)]));

-- logs('p' [, start, until, max_rows => 100, failures_only]) -> the newest calls of a deployment
-- in the window, oldest first: time, call_id, version, arm, shadow, status (ok, error, timeout,
-- cancelled), error, seconds, rows in and out, check_failures, failures and alerts per
-- validation, the logged rows in and out (JSON). COPY (FROM logs('p', max_rows => 1000000)) TO
-- 'file' exports it. "end" and "limit" (quoted: reserved words in DuckDB's parser) are the same
-- as until and max_rows.
CREATE OR REPLACE MACRO logs(
    name,
    start := NULL, until := NULL, "end" := NULL, max_rows := NULL, "limit" := NULL,
    failures_only := NULL
) AS TABLE
    FROM query(synth_call('synth_logs', [CAST(name AS VARCHAR), CAST(to_json({
    'start': start, 'until': coalesce(until, "end"), 'max_rows': coalesce(max_rows, "limit"),
    'failures_only': failures_only
}) AS VARCHAR)]));

-- register_model('name', 'file.pt2', inputs => ['column', ..], outputs => ['name', ..]) -> the
-- version added (admin only; the file within the server's --allow-files). The file is a
-- torch.export program (torch.export.save) taking one float32 tensor (rows, inputs) and
-- returning (rows, outputs), or (rows) for one output. It is checked before anything in it runs:
-- no pickle but the sample inputs' tensors, plain shape expressions, and only the ATen operators
-- of duck_synth/pipelines/operators.py (custom operators and Python callbacks refused); then
-- loaded and run once on zeros.
CREATE OR REPLACE MACRO register_model(name, path, inputs := NULL, outputs := NULL) AS TABLE
    FROM query(synth_call('synth_register_model', [CAST(name AS VARCHAR), CAST(path AS VARCHAR), CAST(to_json({
    'inputs': inputs, 'outputs': outputs
}) AS VARCHAR)]));

-- user_models() -> the registered user models' versions (the programs left out).
CREATE OR REPLACE MACRO user_models() AS TABLE
    SELECT name, version, CAST(inputs AS VARCHAR[]) AS inputs,
           CAST(outputs AS VARCHAR[]) AS outputs, json_array_length(operators) AS n_operators,
           sha256, octet_length(program) AS bytes, created
    FROM synth.user_models ORDER BY name, version;

-- score('model' | 'model@version', row) -> MAP(VARCHAR, DOUBLE): a registered user model's
-- outputs for a row (a struct: the table's alias, or {'carat': carat, ..}) read from its input
-- columns; score('fraud_clf', t)['p_fraud']. NULL inputs give NULL.
CREATE OR REPLACE MACRO score(model, record) AS
    synth_score(CAST(model AS VARCHAR), CAST(to_json(record) AS VARCHAR));

-- logged_rows('p' [, arm => 'p2@1', side => 'out' | 'in', start, until, max_rows => 1000]) ->
-- the rows the log kept of the newest max_rows arm runs, one row each (call_id, arm, time, then
-- its columns, typed from the JSON): evaluate('real', 'SELECT * EXCLUDE (call_id, arm, time)
-- FROM logged_rows(..)') compares the arms of a split or shadow.
CREATE OR REPLACE MACRO logged_rows(
    name,
    arm := NULL, side := NULL, start := NULL, until := NULL, "end" := NULL, max_rows := NULL,
    "limit" := NULL
) AS TABLE
    FROM query(synth_call('synth_logged_rows', [CAST(name AS VARCHAR), CAST(to_json({
    'arm': arm, 'side': side, 'start': start, 'until': coalesce(until, "end"),
    'max_rows': coalesce(max_rows, "limit")
}) AS VARCHAR)]));

-- runs() -> the trainings, newest last: status (running, succeeded, failed, cancelled,
-- interrupted), progress (share done, written about once a second while it runs), epochs,
-- seconds, the last epoch's losses and the error of a failed run. A client of a server follows a
-- training here; cancelling its statement stops it (the run becomes cancelled, no model).
CREATE OR REPLACE MACRO runs() AS TABLE
    SELECT run_id, model, version, method, status, progress, epochs, seconds,
           CAST(json_extract(losses, '$[-1]') AS JSON) AS last_losses, started, finished, error
    FROM synth.runs ORDER BY run_id;
