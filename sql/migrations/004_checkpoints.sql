-- duck_synth catalog, version 4: training checkpoints (train(..., resume => true)).

-- At most one row per run, replaced at each save: the run's finished parts and the state of
-- the part in progress (duck_synth/checkpoints.py). Removed when the run's model is added, by
-- drop_checkpoints(), and after a retention period.
CREATE TABLE IF NOT EXISTS synth.checkpoints (
    run_id      BIGINT PRIMARY KEY,
    model       VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL,  -- the training data and options it continues
    part        VARCHAR NOT NULL,  -- the network in progress
    epochs      INTEGER NOT NULL,  -- epochs of that network done
    bytes       BIGINT NOT NULL,
    state       BLOB NOT NULL,
    created     TIMESTAMP NOT NULL
);
