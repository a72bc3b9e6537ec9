-- session-drill-down: What happened inside one gateway session, in order: statements with their bind
-- parameters and outcomes (command tag, rows, error), policy decisions and who approved or rejected
-- them, HTTP exchanges, COPY transfers and shell I/O (asciicast events).
-- @param session_id String | the gateway session id
-- @param limit UInt32 = 10000 | at most this many rows
-- gateway_session_events is ORDER BY (session_id, event_seq): a single key range. The time range does
-- not cut a session short: the events of the session named are all returned; host, resource and agent
-- do not apply (a session id names one session).
WITH
    (
        SELECT groupArray((host, source, start_time, end_time)) FROM audit_gaps FINAL
        WHERE end_time >= {from:DateTime64(9, 'UTC')} - INTERVAL 60 SECOND AND start_time <= {to:DateTime64(9, 'UTC')} + INTERVAL 60 SECOND
    ) AS gaps,
    (SELECT any(gateway_id) FROM gateway_sessions WHERE session_id = {session_id:String}) AS gateway
SELECT
    event_seq,
    time,
    kind,
    statement_text,
    statement_parameters,
    command_tag,
    rows,
    error_code,
    error_message,
    round(duration_nano / 1e6, 3) AS duration_ms,
    policy_action,
    policy_rule,
    reviewer,
    reason,
    http_method,
    http_path,
    http_status,
    request_bytes,
    response_bytes,
    copy_direction,
    copy_bytes,
    shell_offset_seconds,
    shell_stream,
    shell_data,
    toBool(arrayExists(g -> (g.1 = gateway OR g.2 IN ('spool', 'store', 'collector')) AND g.3 - INTERVAL 60 SECOND <= time AND g.4 + INTERVAL 60 SECOND >= time, gaps)) AS gap_overlap
FROM gateway_session_events FINAL
WHERE session_id = {session_id:String}
ORDER BY event_seq
LIMIT {limit:UInt32}
