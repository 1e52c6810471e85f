-- Every change of a user profile (insert, update, delete, including deletes cascaded
-- from its organisation) is announced on `hl_profiles_changed` with the user id, at
-- commit, so every API instance forgets that user's cached profile at once. A
-- TRUNCATE announces an empty payload: forget every profile.
CREATE FUNCTION hl_notify_profile_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('hl_profiles_changed', '');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('hl_profiles_changed', OLD.user_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.user_id <> OLD.user_id) THEN
        PERFORM pg_notify('hl_profiles_changed', NEW.user_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER user_profiles_notify
AFTER INSERT OR UPDATE OR DELETE ON user_profiles
FOR EACH ROW EXECUTE FUNCTION hl_notify_profile_changed();

CREATE TRIGGER user_profiles_truncate_notify
AFTER TRUNCATE ON user_profiles
FOR EACH STATEMENT EXECUTE FUNCTION hl_notify_profile_changed();
