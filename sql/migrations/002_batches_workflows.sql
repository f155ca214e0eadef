-- duck_synth catalog, version 2: resumable batch generation into tables, saved workflows.

-- One row per table that generate_into() appends to: the arguments of its latest run and how
-- far it got (committed with each batch, so a stopped run resumes where it stopped).
CREATE TABLE IF NOT EXISTS synth.batch_runs (
    table_name VARCHAR PRIMARY KEY,
    model      VARCHAR NOT NULL,
    version    INTEGER NOT NULL,
    arguments  JSON NOT NULL,
    seed       BIGINT NOT NULL,
    target     BIGINT NOT NULL,
    state      JSON NOT NULL,
    status     VARCHAR NOT NULL,  -- running | done
    started    TIMESTAMP NOT NULL,
    updated    TIMESTAMP NOT NULL
);

-- Named pipelines saved as table macros (create_workflow): the SQL as given, the SQL the macro
-- runs (after the rewrite), and the models it reads.
CREATE TABLE IF NOT EXISTS synth.workflows (
    name       VARCHAR PRIMARY KEY,
    sql        VARCHAR NOT NULL,
    runs_as    VARCHAR NOT NULL,
    parameters JSON NOT NULL,
    models     JSON NOT NULL,
    created    TIMESTAMP NOT NULL
);
