"""The PostgreSQL ledger's writes as server functions: each write is one statement, one round trip.

Why: every write takes the ledger's one advisory lock, the single point all workers on all
hosts queue on. Run from the client, a write holds that lock across five to eight round
trips (BEGIN, the lock, the head, the inserts, COMMIT), so the whole cluster's ledger
throughput is bounded by the network's round-trip time, however many workers it has; and
each round trip costs the worker a thread hand-off and the server a statement. As one
function call in autocommit, the write is one transaction that takes the lock, does its
work and commits inside the server: the lock is held for no round trip at all.

Each function is the PostgreSQL twin of one `LedgerCore` method and keeps its rules to the
letter; the shared suite (tests/test_ledger_backends.py) holds the two backends to the same
behaviour, including chains written by many processes at once. The chain's hash is the one
`ledger_core.chain_hash` computes, SHA-256 over `prev_hash || "\\n" || body` in UTF-8, so a
chain extended here verifies in Python and the other way round.

Events travel as six parallel text arrays (`event_columns` of each: id, at, run id, step id,
event, canonical body); the body is canonical JSON made by the client, so the server never
re-encodes what is hashed.
"""

from __future__ import annotations

import hashlib
from typing import Any

from handrail.gate.ledger_core import GENESIS

WRITE_LOCK = 0x68616E6472  # "handr": the ledger's one advisory lock key

_EVENTS = "ids text[], ats text[], run_ids text[], step_ids text[], kinds text[], bodies text[]"

FUNCTIONS = f"""
-- Extend the chain with the events not yet recorded (all of them with known_new), in order.
-- The caller holds the ledger's write lock.
CREATE OR REPLACE FUNCTION handrail_chain({_EVENTS}, known_new boolean) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash text;
    digest text;
    added integer := 0;
BEGIN
    SELECT seq, hash INTO head_seq, head_hash FROM audit ORDER BY seq DESC LIMIT 1;
    IF NOT FOUND THEN
        head_seq := 0;
        head_hash := '{GENESIS}';
    END IF;
    FOR i IN 1 .. coalesce(array_length(ids, 1), 0) LOOP
        CONTINUE WHEN NOT known_new AND EXISTS (SELECT 1 FROM audit WHERE event_id = ids[i]);
        digest := encode(sha256(convert_to(head_hash || E'\\n' || bodies[i], 'UTF8')), 'hex');
        head_seq := head_seq + 1;
        INSERT INTO audit(seq, event_id, at, run_id, step_id, event, body, prev_hash, hash)
            VALUES (head_seq, ids[i], ats[i], run_ids[i], step_ids[i], kinds[i], bodies[i], head_hash, digest);
        head_hash := digest;
        added := added + 1;
    END LOOP;
    RETURN added;
END $$;

-- LedgerCore.append
CREATE OR REPLACE FUNCTION handrail_append({_EVENTS}, known_new boolean) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({WRITE_LOCK});
    RETURN handrail_chain(ids, ats, run_ids, step_ids, kinds, bodies, known_new);
END $$;

-- LedgerCore.check_limits: count (changes and others' live reservations) and reserve, under the lock.
CREATE OR REPLACE FUNCTION handrail_check_limits({_EVENTS}, p_kind text, p_run_id text, p_change_id text,
    p_now text, p_since text, p_expires text, per_hour double precision, per_run double precision,
    OUT hour bigint, OUT run bigint, OUT reserved boolean)
LANGUAGE plpgsql AS $$
DECLARE
    held_hour bigint;
    held_run bigint;
    begun boolean;
BEGIN
    PERFORM pg_advisory_xact_lock({WRITE_LOCK});
    PERFORM handrail_chain(ids, ats, run_ids, step_ids, kinds, bodies, false);
    DELETE FROM reservations WHERE expires_at <= p_now;
    SELECT (SELECT COUNT(*) FROM changes c WHERE c.kind = p_kind AND c.applied_at >= p_since),
           (SELECT COUNT(*) FROM changes c WHERE c.kind = p_kind AND c.run_id = p_run_id),
           (SELECT COUNT(*) FROM reservations r WHERE r.kind = p_kind AND r.change_id <> p_change_id),
           (SELECT COUNT(*) FROM reservations r WHERE r.kind = p_kind AND r.run_id = p_run_id
                AND r.change_id <> p_change_id),
           EXISTS (SELECT 1 FROM changes c WHERE c.change_id = p_change_id)
      INTO hour, run, held_hour, held_run, begun;
    hour := hour + held_hour;
    run := run + held_run;
    reserved := (per_hour IS NULL OR hour + 1 <= per_hour) AND (per_run IS NULL OR run + 1 <= per_run)
                AND NOT begun;
    IF reserved THEN
        INSERT INTO reservations(change_id, run_id, kind, at, expires_at)
            VALUES (p_change_id, p_run_id, p_kind, p_now, p_expires)
            ON CONFLICT (change_id) DO UPDATE SET run_id = EXCLUDED.run_id, kind = EXCLUDED.kind,
                at = EXCLUDED.at, expires_at = EXCLUDED.expires_at;
    END IF;
END $$;

-- LedgerCore.begin_change: the intent (a retry keeps the first), its reservation turned into
-- the change, the audit that rode along and, for a new intent that carries its inverse, its
-- chained twin (t_*: zero or one event); returns the stored row with its revert, if any.
CREATE OR REPLACE FUNCTION handrail_begin_change({_EVENTS},
    t_ids text[], t_ats text[], t_run_ids text[], t_step_ids text[], t_kinds text[], t_bodies text[],
    p_change_id text, p_run_id text, p_step_id text, p_kind text, p_target text, p_mode text,
    p_automated integer, p_applied_at text, p_expires_at text, p_body text,
    OUT stored_body text, OUT reverted_at text, OUT reverted_by text)
LANGUAGE plpgsql AS $$
DECLARE
    inserted integer;
BEGIN
    PERFORM pg_advisory_xact_lock({WRITE_LOCK});
    INSERT INTO changes(change_id, run_id, step_id, kind, target, mode, automated, applied_at, expires_at, body)
        VALUES (p_change_id, p_run_id, p_step_id, p_kind, p_target, p_mode, p_automated, p_applied_at,
                p_expires_at, p_body)
        ON CONFLICT (change_id) DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    IF inserted = 1 THEN
        DELETE FROM reservations r WHERE r.change_id = p_change_id;
        ids := ids || t_ids; ats := ats || t_ats; run_ids := run_ids || t_run_ids;
        step_ids := step_ids || t_step_ids; kinds := kinds || t_kinds; bodies := bodies || t_bodies;
    END IF;
    PERFORM handrail_chain(ids, ats, run_ids, step_ids, kinds, bodies, false);
    SELECT c.body, r.at, r.by INTO stored_body, reverted_at, reverted_by
        FROM changes c LEFT JOIN reverts r ON r.change_id = c.change_id WHERE c.change_id = p_change_id;
END $$;

-- LedgerCore.finish_change: the row's new state and its chained twin, together.
CREATE OR REPLACE FUNCTION handrail_finish_change({_EVENTS}, p_change_id text, p_body text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({WRITE_LOCK});
    UPDATE changes c SET body = p_body WHERE c.change_id = p_change_id;
    PERFORM handrail_chain(ids, ats, run_ids, step_ids, kinds, bodies, false);
END $$;

-- LedgerCore.record_revert: false when the change was already undone (its event is then not chained).
CREATE OR REPLACE FUNCTION handrail_record_revert({_EVENTS}, p_change_id text, p_run_id text, p_reason text,
    p_by text, p_at text, p_verified integer, p_detail text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    inserted integer;
BEGIN
    PERFORM pg_advisory_xact_lock({WRITE_LOCK});
    INSERT INTO reverts(change_id, run_id, reason, by, at, verified, detail)
        VALUES (p_change_id, p_run_id, p_reason, p_by, p_at, p_verified, p_detail)
        ON CONFLICT (change_id) DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    IF inserted = 1 THEN
        PERFORM handrail_chain(ids, ats, run_ids, step_ids, kinds, bodies, false);
    END IF;
    RETURN inserted = 1;
END $$;

-- LedgerCore.keep_change: the change marked undone without a tool call, because p_holder_id still
-- holds its state; with p_heir_body (a hand-over) the holder's row rewritten and its twin chained
-- first (the events carry the twin, then the revert). 'already' / 'moved': nothing is written.
CREATE OR REPLACE FUNCTION handrail_keep_change({_EVENTS}, p_change_id text, p_run_id text, p_reason text,
    p_by text, p_at text, p_verified integer, p_detail text, p_holder_id text, p_heir_body text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    holder_body text;
    holder_reverted text;
BEGIN
    PERFORM pg_advisory_xact_lock({WRITE_LOCK});
    IF EXISTS (SELECT 1 FROM reverts r WHERE r.change_id = p_change_id) THEN
        RETURN 'already';
    END IF;
    SELECT c.body, r.change_id INTO holder_body, holder_reverted
        FROM changes c LEFT JOIN reverts r ON r.change_id = c.change_id WHERE c.change_id = p_holder_id;
    IF NOT FOUND OR holder_reverted IS NOT NULL THEN
        RETURN 'moved';
    END IF;
    IF p_heir_body IS NOT NULL THEN
        IF (holder_body::jsonb ->> 'status') IS DISTINCT FROM 'unchanged' THEN
            RETURN 'moved';
        END IF;
        UPDATE changes c SET body = p_heir_body WHERE c.change_id = p_holder_id;
    END IF;
    INSERT INTO reverts(change_id, run_id, reason, by, at, verified, detail)
        VALUES (p_change_id, p_run_id, p_reason, p_by, p_at, p_verified, p_detail);
    PERFORM handrail_chain(ids, ats, run_ids, step_ids, kinds, bodies, false);
    RETURN 'kept';
END $$;
"""

_VERSION = "handrail ledger functions " + hashlib.sha256(FUNCTIONS.encode()).hexdigest()[:16]
_MARKED = "handrail_append(text[], text[], text[], text[], text[], text[], boolean)"


def install(conn: Any) -> None:
    """Create or replace the functions when they are missing or differ from this code's (the
    version is a digest of their text, kept as a comment on one of them). Opening a ledger that
    has them (every CLI command, every worker start) then rewrites no catalog row and
    invalidates no other session's cached plan; the caller holds the ledger's write lock."""
    installed = conn.execute("SELECT obj_description(to_regprocedure(%s), 'pg_proc')", (_MARKED,)).fetchone()
    if installed and installed[0] == _VERSION:
        return
    conn.execute(FUNCTIONS)
    conn.execute(f"COMMENT ON FUNCTION {_MARKED} IS '{_VERSION}'")


_ARRAYS = "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[]"


class PgCalls:
    """The statements that call the functions above (psycopg `%s` parameters)."""

    APPEND = f"SELECT handrail_append({_ARRAYS}, %s)"
    CHECK_LIMITS = (f"SELECT hour, run, reserved FROM handrail_check_limits({_ARRAYS},"
                    " %s, %s, %s, %s, %s, %s, %s::float8, %s::float8)")
    BEGIN_CHANGE = (f"SELECT stored_body, reverted_at, reverted_by FROM handrail_begin_change({_ARRAYS}, {_ARRAYS},"
                    " %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
    FINISH_CHANGE = f"SELECT handrail_finish_change({_ARRAYS}, %s, %s)"
    RECORD_REVERT = f"SELECT handrail_record_revert({_ARRAYS}, %s, %s, %s, %s, %s, %s, %s)"
    KEEP_CHANGE = f"SELECT handrail_keep_change({_ARRAYS}, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
