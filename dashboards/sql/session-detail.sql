-- session-detail: Who opened one gateway session, to what, how it ended, and which host process it was:
-- one row with the session record, its host attribution (the mediated connect joined with it: host,
-- process, binary, agent run) and a summary of its events (statements, errors, policy decisions,
-- reviewers who approved or rejected).
-- @param session_id String | the gateway session id
-- Reads the session (FINAL keeps the closing record), its mediated connect by the session_id bloom filter
-- (not the gateway's own leg, verdict other), the process by key from process_execs (migration 0005), and
-- the events by the (session_id, event_seq) key range. A session id names one
-- session, so the time range, host, resource and agent do not apply.
WITH
    (
        SELECT groupArray((host, source, start_time, end_time)) FROM audit_gaps FINAL
        WHERE end_time >= (SELECT min(start_time) FROM gateway_sessions WHERE session_id = {session_id:String}) - INTERVAL 60 SECOND
            AND start_time <= (SELECT max(if(end_time = toDateTime64(0, 9, 'UTC'), now64(9), end_time)) FROM gateway_sessions WHERE session_id = {session_id:String}) + INTERVAL 60 SECOND
    ) AS gaps,
    attribution AS (
        SELECT session_id, any(host) AS attributed_host, any(exec_id) AS attributed_exec, any(agent_run) AS attributed_run, any(pid) AS attributed_pid
        FROM connect_events
        WHERE verdict = 'mediated' AND session_id = {session_id:String}
        GROUP BY session_id
    ),
    image AS (
        SELECT argMax(filename, time) AS attributed_binary FROM process_execs
        WHERE exec_id IN (SELECT attributed_exec FROM attribution)
    ),
    summary AS (
        SELECT
            session_id,
            countIf(kind IN ('statement', 'pg_request')) AS statements,
            countIf(error_code != '' OR error_message != '') AS errors,
            countIf(kind = 'http') AS http_exchanges,
            countIf(policy_action = 'deny') AS denied,
            countIf(policy_action = 'approved') AS approved,
            countIf(policy_action = 'rejected') AS rejected,
            arraySort(groupUniqArrayIf(reviewer, reviewer != '')) AS reviewers
        FROM gateway_session_events FINAL
        WHERE session_id = {session_id:String}
        GROUP BY session_id
    )
SELECT
    s.session_id AS session_id,
    s.gateway_id AS gateway_id,
    s.identity_subject AS identity_subject,
    s.identity_method AS identity_method,
    s.identity_claims AS identity_claims,
    s.resource AS resource,
    s.protocol AS protocol,
    s.database AS database,
    s.target_user AS target_user,
    concat(s.client_ip, ':', toString(s.client_port)) AS client,
    s.start_time AS start_time,
    s.end_time AS end_time,
    s.outcome AS outcome,
    s.failure AS failure,
    s.bytes_from_client AS bytes_from_client,
    s.bytes_to_client AS bytes_to_client,
    a.attributed_host AS host,
    a.attributed_run AS agent_run,
    a.attributed_exec AS exec_id,
    a.attributed_pid AS pid,
    (SELECT attributed_binary FROM image) AS binary,
    toBool(a.session_id != '') AS attributed,
    sm.statements AS statements,
    sm.errors AS errors,
    sm.http_exchanges AS http_exchanges,
    sm.denied AS denied,
    sm.approved AS approved,
    sm.rejected AS rejected,
    sm.reviewers AS reviewers,
    toBool(arrayExists(g -> (g.1 = s.gateway_id OR g.1 = a.attributed_host OR g.2 IN ('spool', 'store', 'collector'))
        AND g.3 - INTERVAL 60 SECOND <= if(s.end_time = toDateTime64(0, 9, 'UTC'), now64(9), s.end_time) AND g.4 + INTERVAL 60 SECOND >= s.start_time, gaps)) AS gap_overlap
FROM gateway_sessions AS s FINAL
LEFT JOIN attribution AS a ON a.session_id = s.session_id
LEFT JOIN summary AS sm ON sm.session_id = s.session_id
WHERE s.session_id = {session_id:String}
