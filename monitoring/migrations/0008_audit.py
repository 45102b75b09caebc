from django.db import migrations

# The audit log is append-only: the table refuses UPDATE and DELETE, whoever asks (admin, shell, auditlog's own
# `auditlogflush`, a cascade from a deleted content type). One update is let through: deleting a user account
# sets its entries' actor to NULL (auditlog's FK is SET_NULL); the entry then keeps the account's e-mail
# (actor_email, written with the entry) and its username (additional_data.deleted_actor, written here).
# An erasure of a visitor's data (chat/privacy.py) deletes the entries that name the visitor's rows: it says so
# for its own transaction only, with SET LOCAL spotter.audit_erasure = 'on'.
# TRUNCATE is left to the table's owner: the test suite's flush uses it. A database owner can drop the trigger;
# a deployment that must stop that runs the app as a role that does not own the table.
APPEND_ONLY = """
CREATE FUNCTION auditlog_logentry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('spotter.audit_erasure', true) = 'on' THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.actor_id IS NOT NULL AND NEW.actor_id IS NULL
            AND to_jsonb(NEW) - 'actor_id' = to_jsonb(OLD) - 'actor_id' THEN
        NEW.additional_data := CASE WHEN jsonb_typeof(OLD.additional_data) = 'object'
                                    THEN OLD.additional_data ELSE '{}'::jsonb END
            || jsonb_build_object('deleted_actor', (SELECT username FROM auth_user WHERE id = OLD.actor_id));
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % of entry % refused', TG_OP, OLD.id
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER auditlog_logentry_append_only BEFORE UPDATE OR DELETE ON auditlog_logentry
    FOR EACH ROW EXECUTE FUNCTION auditlog_logentry_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS auditlog_logentry_append_only ON auditlog_logentry;
DROP FUNCTION IF EXISTS auditlog_logentry_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0007_alerts"),
        ("auditlog", "0017_add_actor_email"),
        ("auth", "0012_alter_user_first_name_max_length"),  # the trigger reads auth_user
    ]

    operations = [migrations.RunSQL(APPEND_ONLY, DROP)]
