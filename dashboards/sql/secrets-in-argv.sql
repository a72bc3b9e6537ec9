-- secrets-in-argv: Which processes were started with a secret on their command line (a password, token or
-- key in argv)? The sensor redacts the secret before the record leaves it (the value reads ****); this
-- lists those execs, newest first, with the secret_in_argv alert raised for each, if any.
-- @param limit UInt32 = 100 | at most this many rows
-- resource does not apply to a command line.
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
    redacted AS (
        SELECT time, host, exec_id, agent_run, pid, uid, comm, filename, argv, argv_truncated
        FROM process_events FINAL
        WHERE kind = 'exec' AND arrayExists(a -> position(a, '****') > 0, argv)
            AND time >= {from:DateTime64(9, 'UTC')} AND time < {to:DateTime64(9, 'UTC')}
            AND ({host:String} = '' OR host = {host:String})
            AND ({agent:String} = '' OR agent_run IN matching_runs)
        ORDER BY time DESC
        LIMIT {limit:UInt32}
    ),
    raised AS (
        SELECT exec_id, any(alert_id) AS alert, any(severity) AS alert_severity
        FROM alerts FINAL
        WHERE kind = 'secret_in_argv' AND exec_id IN (SELECT exec_id FROM redacted)
        GROUP BY exec_id
    )
SELECT
    r.time AS time,
    r.host AS host,
    r.agent_run AS agent_run,
    r.exec_id AS exec_id,
    r.pid AS pid,
    r.uid AS uid,
    r.comm AS comm,
    r.filename AS binary,
    r.argv AS argv,
    r.argv_truncated AS argv_truncated,
    raised.alert AS alert_id,
    raised.alert_severity AS severity,
    toBool(arrayExists(g -> g.1 = r.host AND g.3 - INTERVAL 60 SECOND <= r.time AND g.4 + INTERVAL 60 SECOND >= r.time, gaps)) AS gap_overlap
FROM redacted AS r
LEFT JOIN raised ON raised.exec_id = r.exec_id
ORDER BY time DESC, exec_id
