-- agent-run-timeline: Everything one agent run did, in time order: its processes' execs, forks and exits,
-- their connects with verdicts, and the gateway session events (statements, policy decisions, HTTP
-- exchanges …) of the sessions its mediated connects were joined with, interleaved. `what` is process,
-- connect or gateway; `detail` the event kind (exec/fork/exit, tcp/udp/unix, statement/policy/http …);
-- `target` the binary and command line, the destination, or the statement / decision / request.
-- @param agent_run String | the run's exec_id
-- @param limit UInt32 = 1000 | at most this many rows
-- process_events is ORDER BY (agent_run, time, …) and connect_events ORDER BY (verdict, agent_run, time,
-- …), so both reads are key ranges per run (one per verdict); the run's sessions are key ranges of
-- gateway_session_events' ORDER BY (session_id, event_seq).
-- host, resource and agent narrow the host-side rows; session events follow the connects they belong to.
WITH
    (
        SELECT groupArray((host, source, start_time, end_time)) FROM audit_gaps FINAL
        WHERE end_time >= {from:DateTime64(9, 'UTC')} - INTERVAL 60 SECOND AND start_time <= {to:DateTime64(9, 'UTC')} + INTERVAL 60 SECOND
    ) AS gaps,
    matching_runs AS (
        SELECT exec_id FROM process_execs
        WHERE {agent:String} != '' AND agent_run = {agent_run:String} AND exec_id = agent_run
            AND (comm = {agent:String} OR basename(filename) = {agent:String} OR positionCaseInsensitive(arrayStringConcat(argv, ' '), {agent:String}) > 0)
    ),
    run_connects AS (
        SELECT time, host, exec_id, transport, destination_ip, destination_port, destination_unix_path, verdict, resource, session_id
        FROM connect_events FINAL
        WHERE agent_run = {agent_run:String}
            AND time >= {from:DateTime64(9, 'UTC')} AND time < {to:DateTime64(9, 'UTC')}
            AND ({host:String} = '' OR host = {host:String})
            AND ({resource:String} = '' OR resource = {resource:String})
    ),
    run_sessions AS (
        SELECT session_id, any(host) AS session_host, any(exec_id) AS session_exec, any(resource) AS session_resource
        FROM run_connects WHERE session_id != '' GROUP BY session_id
    ),
    session_gateways AS (
        SELECT session_id, any(gateway_id) AS gateway FROM gateway_sessions WHERE session_id IN (SELECT session_id FROM run_sessions) GROUP BY session_id
    ),
    timeline AS (
        SELECT time, host, 'process' AS what, toString(kind) AS detail, exec_id,
            if(kind = 'exec', concat(filename, if(length(argv) > 0, concat(' ', arrayStringConcat(argv, ' ')), '')), if(kind = 'exit', concat('exit ', toString(exit_code)), filename)) AS target,
            '' AS verdict, '' AS resource, '' AS session_id, toUInt64(0) AS event_seq, host AS gap_host
        FROM process_events FINAL
        WHERE agent_run = {agent_run:String}
            AND time >= {from:DateTime64(9, 'UTC')} AND time < {to:DateTime64(9, 'UTC')}
            AND ({host:String} = '' OR host = {host:String})
        UNION ALL
        SELECT time, host, 'connect' AS what, toString(transport) AS detail, exec_id,
            if(destination_unix_path != '', destination_unix_path, concat(destination_ip, ':', toString(destination_port))) AS target,
            toString(verdict) AS verdict, resource, session_id, toUInt64(0) AS event_seq, host AS gap_host
        FROM run_connects
        UNION ALL
        SELECT e.time, s.session_host AS host, 'gateway' AS what, toString(e.kind) AS detail, s.session_exec AS exec_id,
            multiIf(
                e.kind IN ('statement', 'pg_request', 'copy'), e.statement_text,
                e.kind = 'policy', concat(toString(e.policy_action), ' by rule ', e.policy_rule, if(e.reviewer != '', concat(', reviewer ', e.reviewer), '')),
                e.kind = 'http', concat(e.http_method, ' ', e.http_path, ' → ', toString(e.http_status)),
                e.kind = 'error', concat(e.error_code, ' ', e.error_message),
                e.kind = 'shell_output', concat(e.shell_stream, ' ', toString(length(e.shell_data)), ' bytes'),
                ''
            ) AS target,
            '' AS verdict, s.session_resource AS resource, e.session_id AS session_id, e.event_seq AS event_seq, g.gateway AS gap_host
        FROM gateway_session_events AS e FINAL
        INNER JOIN run_sessions AS s ON s.session_id = e.session_id
        LEFT JOIN session_gateways AS g ON g.session_id = e.session_id
        WHERE e.session_id IN (SELECT session_id FROM run_sessions)
    )
SELECT
    time,
    host,
    what,
    detail,
    exec_id,
    target,
    verdict,
    resource,
    session_id,
    event_seq,
    toBool(arrayExists(g -> (g.1 = gap_host OR (what = 'gateway' AND g.1 = host)) AND g.3 - INTERVAL 60 SECOND <= time AND g.4 + INTERVAL 60 SECOND >= time, gaps)) AS gap_overlap
FROM timeline
WHERE {agent:String} = '' OR {agent_run:String} IN matching_runs
ORDER BY time, what, event_seq
LIMIT {limit:UInt32}
