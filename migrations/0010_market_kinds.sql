-- Every market kind priced in the right token.
--
-- Kind and dex follow the coin's spelling, always, so they are generated from it:
-- `@N` or `BASE/QUOTE` is spot, `#N` an outcome market (HIP-4), anything else a perp,
-- whose dex (HIP-3, `dex:COIN`) is the part before the colon, NULL for the default dex.
-- `extra` keeps the keys of a fill the parser does not know (`builder`,
-- `deployerFee`, future ones): history past the 10,000-fill horizon cannot be
-- fetched again.
ALTER TABLE hl_fills_raw
    ADD COLUMN market text GENERATED ALWAYS AS (
        CASE WHEN left(coin, 1) = '@' OR strpos(coin, '/') > 0 THEN 'spot'
             WHEN left(coin, 1) = '#' THEN 'outcome'
             ELSE 'perp' END) STORED,
    ADD COLUMN dex text GENERATED ALWAYS AS (
        CASE WHEN left(coin, 1) NOT IN ('@', '#') AND strpos(coin, '/') = 0
                  AND strpos(coin, ':') > 0
             THEN split_part(coin, ':', 1) END) STORED,
    ADD COLUMN extra jsonb;

-- A dust conversion has tid 0, oid 0 and a zero hash, and one conversion event
-- converts several tokens in the same millisecond: the coin joins the identity.
ALTER TABLE hl_fills_raw DROP CONSTRAINT hl_fills_raw_identity;
ALTER TABLE hl_fills_raw
    ADD CONSTRAINT hl_fills_raw_identity PRIMARY KEY (wallet_id, time, tid, oid, coin);

-- What each coin trades against, from Hyperliquid's metadata (`spotMeta`, `perpDexs`,
-- `meta` with `dex`), resolved by the workers. `quote_token` NULL: unknown, so the
-- coin's amounts are unpriced. `resolved_at` NULL: metadata has not answered for it
-- yet (a worker retries, then rebuilds the days of its fills).
CREATE TABLE hl_markets (
    coin          text PRIMARY KEY,
    market        text NOT NULL CHECK (market IN ('perp', 'spot', 'outcome')),
    dex           text,
    base_token    text,
    quote_token   text,
    display_name  text NOT NULL,
    resolved_at   timestamptz,
    checked_at    timestamptz,
    last_error    text
);
INSERT INTO hl_markets (coin, market, dex, display_name)
SELECT DISTINCT coin, market, dex, coin FROM hl_fills_raw;

ALTER TABLE wallet_day_metrics
    ADD COLUMN outcome_volume_usd numeric NOT NULL DEFAULT 0,
    ADD COLUMN unpriced_fills integer NOT NULL DEFAULT 0 CHECK (unpriced_fills >= 0);
ALTER TABLE wallet_day_metrics DROP COLUMN total_volume_usd;
ALTER TABLE wallet_day_metrics ADD COLUMN total_volume_usd numeric
    GENERATED ALWAYS AS (spot_volume_usd + perp_volume_usd + outcome_volume_usd) STORED;

ALTER TABLE global_day_metrics
    ADD COLUMN outcome_volume_usd numeric NOT NULL DEFAULT 0,
    ADD COLUMN unpriced_fills integer NOT NULL DEFAULT 0 CHECK (unpriced_fills >= 0);

-- Moving rows out of the default partition names the columns it copies: generated
-- columns (market, dex) cannot be inserted, and are computed again on the way in.
CREATE OR REPLACE FUNCTION hl_create_fill_partition(month_start date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    first_day date := date_trunc('month', month_start)::date;
    lo bigint := (extract(epoch FROM first_day::timestamp) * 1000)::bigint;
    hi bigint := (extract(epoch FROM (first_day + interval '1 month')::timestamp) * 1000)::bigint;
    part text := format('hl_fills_raw_p%s', to_char(first_day, 'YYYYMM'));
    columns text;
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Serialises concurrent callers and blocks inserts while rows move.
    LOCK TABLE hl_fills_raw_default IN ACCESS EXCLUSIVE MODE;
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO columns
    FROM pg_attribute
    WHERE attrelid = 'hl_fills_raw'::regclass AND attnum > 0 AND NOT attisdropped
      AND attgenerated = '';
    CREATE TEMP TABLE hl_fills_moving ON COMMIT DROP AS
        WITH moved AS (
            DELETE FROM hl_fills_raw_default WHERE time >= lo AND time < hi RETURNING *
        )
        SELECT * FROM moved;
    EXECUTE format('CREATE TABLE %I PARTITION OF hl_fills_raw FOR VALUES FROM (%s) TO (%s)',
                   part, lo, hi);
    EXECUTE format('INSERT INTO hl_fills_raw (%s) SELECT %s FROM hl_fills_moving',
                   columns, columns);
    DROP TABLE hl_fills_moving;
    RETURN true;
END;
$$;
