-- Gateway sessions per authenticated identity: how many, on which resources, how they ended.
-- gateway_sessions is ORDER BY (identity_subject, start_time, session_id), so grouping by identity reads
-- the table in key order. FINAL keeps only the newest record of each session (closed replaces open).
SELECT
    identity_subject,
    count() AS sessions,
    groupUniqArray(resource) AS resources,
    countIf(outcome = 'rejected') AS rejected,
    countIf(outcome = 'open') AS still_open,
    min(start_time) AS first_session,
    max(start_time) AS last_session
FROM gateway_sessions FINAL
WHERE start_time >= {since:DateTime64(9, 'UTC')}
GROUP BY identity_subject
ORDER BY sessions DESC, identity_subject
