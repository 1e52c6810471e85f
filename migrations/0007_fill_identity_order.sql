-- One index on hl_fills_raw instead of two. The identity key (wallet, tid, oid,
-- time) and the (wallet, time) index of 0001 were both maintained on every
-- insert; ordering the key's columns as (wallet, time, tid, oid) keeps the same
-- uniqueness and serves every per-wallet time-range query, so the second index
-- goes. Measured with `python -m bench --only ingest`: a fill insert no longer
-- pays for a second btree.
ALTER TABLE hl_fills_raw DROP CONSTRAINT hl_fills_raw_identity;
ALTER TABLE hl_fills_raw
    ADD CONSTRAINT hl_fills_raw_identity PRIMARY KEY (wallet_id, time, tid, oid);
DROP INDEX hl_fills_raw_wallet_time_idx;
