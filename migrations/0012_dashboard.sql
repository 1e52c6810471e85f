-- What dashboard builders query (issue 17).
--
-- An org's own label for a wallet it tracks: up to 64 printable characters, NULL
-- when it has none. The API checks the same rule first and says what is wrong.
ALTER TABLE org_wallets
    ADD COLUMN label text
        CONSTRAINT org_wallets_label CHECK (
            label IS NULL OR (char_length(label) BETWEEN 1 AND 64 AND label !~ '[[:cntrl:]]'));
