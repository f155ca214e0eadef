-- duck_synth catalog, version 5: pipelines, deployments, their inference logs, user models.

-- Every version of every pipeline (duck_synth/pipelines/): its steps, or the split that routes
-- its calls to other pipelines. A change never edits a row: it adds the next version.
CREATE TABLE IF NOT EXISTS synth.pipelines (
    name    VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    steps   JSON NOT NULL,     -- a list of step objects (pipelines/steps.py)
    split   JSON,              -- NULL, or a random, key or shadow split over other pipelines
    change  VARCHAR NOT NULL,  -- what made this version (created, step added at 2, ...)
    created TIMESTAMP NOT NULL,
    PRIMARY KEY (name, version)
);

-- The pipelines infer() may call, each at one version.
CREATE TABLE IF NOT EXISTS synth.deployments (
    name     VARCHAR PRIMARY KEY,
    version  INTEGER NOT NULL,
    options  JSON NOT NULL,  -- the log's limits (pipelines/logs.py)
    deployed TIMESTAMP NOT NULL
);

-- One row per pipeline run by infer(): the deployment's own, and one per arm a split or a
-- shadow ran (same call_id). Inputs and outputs are kept up to a row limit per call; old rows
-- are removed (pipelines/logs.py: 30 days or 1,000,000 rows per pipeline by default).
CREATE TABLE IF NOT EXISTS synth.inference_logs (
    call_id        VARCHAR NOT NULL,
    pipeline       VARCHAR NOT NULL,  -- the deployment called
    version        INTEGER,
    arm            VARCHAR,           -- the pipeline@version that ran (a split's arm)
    shadow         BOOLEAN NOT NULL,  -- a challenger whose output was not returned
    time           TIMESTAMP NOT NULL,
    seconds        DOUBLE NOT NULL,
    status         VARCHAR NOT NULL,  -- ok | error | timeout
    error          VARCHAR,
    input_rows     BIGINT,
    output_rows    BIGINT,
    check_failures BIGINT,            -- output rows that failed a validation
    failures       JSON,              -- {validation: rows failed}
    alerts         JSON,              -- validations whose share of failed rows passed its alert
    inputs         JSON,              -- the input rows (up to the logged limit)
    outputs        JSON               -- the output rows (up to the logged limit)
);

-- PyTorch programs users register as scoring steps (torch.export files, operators checked).
CREATE TABLE IF NOT EXISTS synth.user_models (
    name      VARCHAR NOT NULL,
    version   INTEGER NOT NULL,
    inputs    JSON NOT NULL,     -- the input columns, in the program's order
    outputs   JSON NOT NULL,     -- the output columns
    operators JSON NOT NULL,     -- the aten operators its graph calls
    sha256    VARCHAR NOT NULL,
    program   BLOB NOT NULL,     -- the file as registered
    created   TIMESTAMP NOT NULL,
    PRIMARY KEY (name, version)
);
