-- sessions-by-identity: Who did what through the gateway: sessions per authenticated identity, on which
-- resources, how many were rejected or are still open, and when.
-- @param limit UInt32 = 100 | at most this many rows
-- gateway_sessions is ORDER BY (identity_subject, start_time, session_id), so grouping by identity reads
-- the table in key order. FINAL keeps only the newest record of each session (closed replaces open).
-- host and agent do not apply (a session's host is known only through attribution: see sessions).
WITH
    (
        SELECT groupArray((host, source, start_time, end_time)) FROM audit_gaps FINAL
        WHERE end_time >= {from:DateTime64(9, 'UTC')} - INTERVAL 60 SECOND AND start_time <= {to:DateTime64(9, 'UTC')} + INTERVAL 60 SECOND
    ) AS gaps,
    per_identity AS (
        SELECT
            identity_subject AS subject,
            count() AS identity_sessions,
            groupUniqArray(resource) AS identity_resources,
            groupUniqArray(gateway_id) AS identity_gateways,
            countIf(outcome = 'rejected') AS identity_rejected,
            countIf(outcome = 'open') AS identity_open,
            min(start_time) AS identity_first,
            max(start_time) AS identity_last
        FROM gateway_sessions FINAL
        WHERE start_time >= {from:DateTime64(9, 'UTC')} AND start_time < {to:DateTime64(9, 'UTC')}
            AND ({resource:String} = '' OR resource = {resource:String})
        GROUP BY identity_subject
    )
SELECT
    subject AS identity_subject,
    identity_sessions AS sessions,
    arraySort(identity_resources) AS resources,
    identity_rejected AS rejected,
    identity_open AS still_open,
    identity_first AS first_session,
    identity_last AS last_session,
    toBool(arrayExists(g -> (has(identity_gateways, g.1) OR g.2 IN ('spool', 'store', 'collector')) AND g.3 - INTERVAL 60 SECOND <= identity_last AND g.4 + INTERVAL 60 SECOND >= identity_first, gaps)) AS gap_overlap
FROM per_identity
ORDER BY sessions DESC, identity_subject
LIMIT {limit:UInt32}
