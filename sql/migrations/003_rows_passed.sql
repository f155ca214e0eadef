-- duck_synth catalog, version 3: the rows that passed every step of a generation, so its
-- acceptance rate is passed / drawn (rows returned can stop short of them).
ALTER TABLE synth.generations ADD COLUMN IF NOT EXISTS rows_passed BIGINT;
