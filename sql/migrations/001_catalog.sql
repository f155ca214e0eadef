-- duck_synth catalog, version 1: models, training runs, generation log.
-- Times are UTC (TIMESTAMP, so reading them needs no time-zone library).
CREATE SCHEMA IF NOT EXISTS synth;

CREATE TABLE IF NOT EXISTS synth.meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

CREATE SEQUENCE IF NOT EXISTS synth.run_id_seq;
CREATE SEQUENCE IF NOT EXISTS synth.generation_id_seq;

-- One row per trained version. Written in one transaction at the end of a
-- successful training: a failed or interrupted run adds nothing here.
CREATE TABLE IF NOT EXISTS synth.models (
    name           VARCHAR NOT NULL,
    version        INTEGER NOT NULL,
    method         VARCHAR NOT NULL,
    source         VARCHAR NOT NULL,
    created        TIMESTAMP NOT NULL,
    options        JSON NOT NULL,      -- train() arguments as given, after defaults
    columns        JSON NOT NULL,      -- [{name, type, kind}] in training order
    statistics     JSON NOT NULL,      -- value-protected analysis + encoders
    metrics        JSON NOT NULL,      -- losses, epochs, seconds
    weights        BLOB NOT NULL,      -- safetensors bytes, never pickle
    training_rows  BIGINT NOT NULL,
    format_version INTEGER NOT NULL,
    run_id         BIGINT,
    PRIMARY KEY (name, version)
);

-- Every training attempt, whatever its outcome.
CREATE TABLE IF NOT EXISTS synth.runs (
    run_id    BIGINT PRIMARY KEY,
    model     VARCHAR NOT NULL,
    version   INTEGER,
    method    VARCHAR,
    source    VARCHAR,
    status    VARCHAR NOT NULL,        -- running | succeeded | failed | cancelled | interrupted
    progress  DOUBLE,
    epochs    INTEGER,
    losses    JSON,
    started   TIMESTAMP NOT NULL,
    finished  TIMESTAMP,
    seconds   DOUBLE,
    error     VARCHAR,
    pid       INTEGER
);

CREATE TABLE IF NOT EXISTS synth.generations (
    generation_id BIGINT PRIMARY KEY,
    model         VARCHAR NOT NULL,
    version       INTEGER NOT NULL,
    arguments     JSON NOT NULL,
    seed          BIGINT NOT NULL,
    rows_drawn    BIGINT NOT NULL,
    rows_returned BIGINT NOT NULL,
    seconds       DOUBLE NOT NULL,
    created       TIMESTAMP NOT NULL
);
