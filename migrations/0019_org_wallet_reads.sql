-- Reads that stay cheap at tens of thousands of wallets per org (issue 20).
--
-- The wallet's address on each org_wallets row (issue 20): `trackedWallets` pages an
-- org's wallets in address order, which with the address only in `wallets` meant
-- joining and sorting all of the org's wallets (tens of thousands) for each page of
-- 50. Kept by a trigger from `wallets`, whose addresses never change, so no writer
-- of org_wallets has to know.
ALTER TABLE org_wallets ADD COLUMN address text;
UPDATE org_wallets ow SET address = w.address FROM wallets w WHERE w.id = ow.wallet_id;
-- Not NOT NULL: a row naming no wallet would fail that check before the foreign key,
-- whose error names the real fault. The foreign key guarantees an address.

CREATE FUNCTION org_wallets_address() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.address := (SELECT address FROM wallets WHERE id = NEW.wallet_id);
    RETURN NEW;
END
$$;
CREATE TRIGGER org_wallets_address BEFORE INSERT OR UPDATE OF wallet_id ON org_wallets
    FOR EACH ROW EXECUTE FUNCTION org_wallets_address();

CREATE INDEX org_wallets_address_idx ON org_wallets (org_id, address);

-- `dashboardSummary`'s last sync of the org: the newest success among its wallets,
-- found by walking successes newest first until one is the org's, not by reading
-- every wallet of the org.
CREATE INDEX hl_ingest_cursor_success_idx ON hl_ingest_cursor (last_success_at DESC)
    WHERE last_success_at IS NOT NULL;
