-- sessions: Which gateway sessions were opened in the time range, newest first, by whom, to which
-- resource, how they ended, how many statements they carried, and which host process and agent run
-- opened them (empty when no host connect was joined with the session).
-- @param limit UInt32 = 100 | at most this many rows
-- host and agent filter on the attribution, so with either set only attributed sessions are listed.
-- Attribution: the mediated connects joined with each session (the gateway's own upstream leg, verdict
-- other, is no attribution), read from connect_events by the session_id bloom filter within an hour of the
-- range (sensor and gateway clocks may differ).
WITH
    (
        SELECT groupArray((host, source, start_time, end_time)) FROM audit_gaps FINAL
        WHERE end_time >= {from:DateTime64(9, 'UTC')} - INTERVAL 60 SECOND AND start_time <= {to:DateTime64(9, 'UTC')} + INTERVAL 60 SECOND
    ) AS gaps,
    matching_runs AS (
        SELECT exec_id FROM process_execs
        WHERE {agent:String} != '' AND exec_id = agent_run
            AND (comm = {agent:String} OR basename(filename) = {agent:String} OR positionCaseInsensitive(arrayStringConcat(argv, ' '), {agent:String}) > 0)
    ),
    in_range AS (
        SELECT session_id, gateway_id, identity_subject, resource, protocol, client_ip, client_port, start_time, end_time, outcome
        FROM gateway_sessions FINAL
        WHERE start_time >= {from:DateTime64(9, 'UTC')} AND start_time < {to:DateTime64(9, 'UTC')}
            AND ({resource:String} = '' OR resource = {resource:String})
    ),
    attribution AS (
        SELECT session_id, any(host) AS attributed_host, any(agent_run) AS attributed_run, any(exec_id) AS attributed_exec
        FROM connect_events
        WHERE verdict = 'mediated'
            AND time >= {from:DateTime64(9, 'UTC')} - INTERVAL 1 HOUR AND time < {to:DateTime64(9, 'UTC')} + INTERVAL 1 HOUR
            AND session_id IN (SELECT session_id FROM in_range)
        GROUP BY session_id
    ),
    listed AS (
        SELECT in_range.*, attribution.attributed_host, attribution.attributed_run, attribution.attributed_exec,
            toBool(attribution.session_id != '') AS is_attributed
        FROM in_range
        LEFT JOIN attribution ON attribution.session_id = in_range.session_id
        WHERE ({host:String} = '' OR attribution.attributed_host = {host:String})
            AND ({agent:String} = '' OR attribution.attributed_run IN matching_runs)
        ORDER BY start_time DESC, session_id
        LIMIT {limit:UInt32}
    ),
    event_counts AS (
        SELECT session_id, countIf(kind IN ('statement', 'pg_request')) AS session_statements, countIf(policy_action IN ('deny', 'rejected')) AS session_refused
        FROM gateway_session_events
        WHERE session_id IN (SELECT session_id FROM listed)
        GROUP BY session_id
    )
SELECT
    listed.session_id AS session_id,
    listed.start_time AS start_time,
    listed.end_time AS end_time,
    listed.gateway_id AS gateway_id,
    listed.identity_subject AS identity_subject,
    listed.resource AS resource,
    listed.protocol AS protocol,
    concat(listed.client_ip, ':', toString(listed.client_port)) AS client,
    listed.outcome AS outcome,
    event_counts.session_statements AS statements,
    event_counts.session_refused AS refused,
    listed.is_attributed AS attributed,
    listed.attributed_host AS host,
    listed.attributed_run AS agent_run,
    listed.attributed_exec AS exec_id,
    toBool(arrayExists(g -> (g.1 = listed.gateway_id OR g.1 = listed.attributed_host OR g.2 IN ('spool', 'store', 'collector'))
        AND g.3 - INTERVAL 60 SECOND <= if(listed.end_time = toDateTime64(0, 9, 'UTC'), {to:DateTime64(9, 'UTC')}, listed.end_time)
        AND g.4 + INTERVAL 60 SECOND >= listed.start_time, gaps)) AS gap_overlap
FROM listed
LEFT JOIN event_counts ON event_counts.session_id = listed.session_id
ORDER BY start_time DESC, session_id
