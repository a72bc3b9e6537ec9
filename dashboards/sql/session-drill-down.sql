-- One gateway session's events in order. Pass the session with --param session_id=<id>.
-- gateway_session_events is ORDER BY (session_id, event_seq): a single key range.
SELECT
    event_seq,
    time,
    kind,
    statement_text,
    command_tag,
    rows,
    error_code,
    policy_action,
    policy_rule,
    reviewer,
    http_method,
    http_path,
    http_status,
    error_message
FROM gateway_session_events FINAL
WHERE session_id = {session_id:String}
ORDER BY event_seq
