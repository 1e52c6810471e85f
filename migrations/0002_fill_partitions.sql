-- Monthly partitions of hl_fills_raw, created ahead of time by
-- hl_ensure_fill_partitions() (called by `migrate` and by the scheduler).

-- Creates the partition of the month containing `month_start`, moving into it
-- any rows of that month that were stored in the default partition meanwhile
-- (PostgreSQL refuses to attach a range the default partition already holds).
CREATE FUNCTION hl_create_fill_partition(month_start date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    first_day date := date_trunc('month', month_start)::date;
    lo bigint := (extract(epoch FROM first_day::timestamp) * 1000)::bigint;
    hi bigint := (extract(epoch FROM (first_day + interval '1 month')::timestamp) * 1000)::bigint;
    part text := format('hl_fills_raw_p%s', to_char(first_day, 'YYYYMM'));
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Serialises concurrent callers and blocks inserts while rows move.
    LOCK TABLE hl_fills_raw_default IN ACCESS EXCLUSIVE MODE;
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    CREATE TEMP TABLE hl_fills_moving ON COMMIT DROP AS
        WITH moved AS (
            DELETE FROM hl_fills_raw_default WHERE time >= lo AND time < hi RETURNING *
        )
        SELECT * FROM moved;
    EXECUTE format('CREATE TABLE %I PARTITION OF hl_fills_raw FOR VALUES FROM (%s) TO (%s)',
                   part, lo, hi);
    INSERT INTO hl_fills_raw SELECT * FROM hl_fills_moving;
    DROP TABLE hl_fills_moving;
    RETURN true;
END;
$$;

-- Ensures partitions for the current month and `months_ahead` months after it,
-- and gives every past month that has rows in the default partition its own.
-- Returns how many partitions it created; idempotent.
CREATE FUNCTION hl_ensure_fill_partitions(months_ahead integer DEFAULT 3) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    this_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    month date;
    created integer := 0;
BEGIN
    FOR i IN 0..months_ahead LOOP
        IF hl_create_fill_partition((this_month + make_interval(months => i))::date) THEN
            created := created + 1;
        END IF;
    END LOOP;
    FOR month IN
        SELECT DISTINCT date_trunc('month', to_timestamp(time / 1000.0) AT TIME ZONE 'UTC')::date
        FROM hl_fills_raw_default
        WHERE time < (extract(epoch FROM this_month::timestamp) * 1000)::bigint
    LOOP
        IF hl_create_fill_partition(month) THEN
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END;
$$;
