-- recent-alerts: Which alerts were raised in the time range, newest first? Optionally of one kind (bypass,
-- secret_in_argv, audit_gap, journal_tampered) or severity.
-- @param kind String = | an alert kind, or empty for all
-- @param severity String = | info, warning or critical, or empty for all
-- @param limit UInt32 = 100 | at most this many rows
-- count is how many occurrences the alert stands for (de-duplication and the rate limit fold them into one
-- alert, never lose them), last_time the newest of them; rule, agent and destination as the sink saw them.
-- alerts is ORDER BY (kind, time, alert_id): each kind is a key range, read in time order.
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
    listed AS (
        SELECT alert_id, time, kind, severity, rule, count, last_time, summary, host, agent_run, agent, resource, destination, exec_id, event_id
        FROM alerts FINAL
        WHERE time >= {from:DateTime64(9, 'UTC')} AND time < {to:DateTime64(9, 'UTC')}
            AND ({kind:String} = '' OR toString(kind) = {kind:String})
            AND ({severity:String} = '' OR toString(severity) = {severity:String})
            AND ({host:String} = '' OR host = {host:String})
            AND ({resource:String} = '' OR resource = {resource:String})
            AND ({agent:String} = '' OR agent = {agent:String} OR agent_run IN matching_runs)
        ORDER BY time DESC, alert_id
        LIMIT {limit:UInt32}
    )
SELECT
    alert_id, time, kind, severity, rule, count, last_time, summary, host, agent_run, agent, resource, destination, exec_id, event_id,
    toBool(arrayExists(g -> g.1 = host AND g.3 - INTERVAL 60 SECOND <= time AND g.4 + INTERVAL 60 SECOND >= time, gaps)) AS gap_overlap
FROM listed
ORDER BY time DESC, alert_id
