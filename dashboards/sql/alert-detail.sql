-- alert-detail: One alert with its lineage: the process that raised it and its ancestors up to the agent
-- run's own process (depth 0 is the process itself), each with its binary and command line, and the event
-- that raised it (for a bypass, the connect: destination, resource, verdict).
-- @param alert_id String | the alert id
-- One row per lineage level; the alert's columns repeat on each. An alert without a known process has
-- one row with depth 0 and empty process columns. The lineage is built from the exec records of the
-- alert's agent run (one key range of process_events' ORDER BY (agent_run, time, …)) plus the process
-- itself (by key in process_execs, migration 0005); the connect that raised it is found within the run's
-- key range of connect_events. Ancestors above the agent run's own process are not part of it. A time range, host, resource
-- or agent does not apply (an alert id names one alert).
WITH
    alert AS (
        SELECT alert_id, time, kind, severity, rule, count, last_time, summary, host, agent_run, agent, resource, destination, exec_id, event_id
        FROM alerts FINAL
        WHERE alert_id = {alert_id:String}
        LIMIT 1
    ),
    (SELECT any(exec_id) FROM alert) AS alert_exec,
    (SELECT any(agent_run) FROM alert) AS alert_run,
    (SELECT any(time) FROM alert) AS alert_time,
    processes AS (
        SELECT
            exec_id AS process,
            argMax(parent_exec_id, time) AS parent,
            argMax(filename, time) AS image,
            argMax(comm, time) AS process_comm,
            argMax(argv, time) AS process_argv,
            argMax(pid, time) AS process_pid,
            argMax(uid, time) AS process_uid,
            max(time) AS exec_time
        FROM (
            SELECT exec_id, parent_exec_id, filename, comm, argv, pid, uid, time FROM process_events
            WHERE kind = 'exec' AND alert_run != '' AND agent_run = alert_run
            UNION ALL
            SELECT exec_id, parent_exec_id, filename, comm, argv, pid, uid, time FROM process_execs
            WHERE exec_id = alert_exec
        )
        GROUP BY exec_id
    ),
    (SELECT mapFromArrays(groupArray(process), groupArray(parent)) FROM processes) AS parents,
    -- Walk parent links from the alerted process; a cycle or a chain deeper than 64 stops the walk.
    arrayFold((chain, step) -> if(
            mapContains(parents, chain[-1]) AND parents[chain[-1]] != '' AND mapContains(parents, parents[chain[-1]]) AND NOT has(chain, parents[chain[-1]]),
            arrayPushBack(chain, parents[chain[-1]]),
            chain),
        range(64), [alert_exec]) AS chain,
    trigger AS (
        SELECT event_id,
            if(destination_unix_path != '', destination_unix_path, concat(destination_ip, ':', toString(destination_port))) AS destination,
            toString(verdict) AS trigger_verdict, session_id AS trigger_session
        FROM connect_events
        WHERE agent_run = alert_run AND event_id = (SELECT any(event_id) FROM alert) AND exec_id = alert_exec
            AND time >= alert_time - INTERVAL 1 HOUR AND time <= alert_time + INTERVAL 1 HOUR
        LIMIT 1
    ),
    gaps AS (
        SELECT groupArray((host, source, start_time, end_time)) AS windows FROM audit_gaps FINAL
        WHERE end_time >= alert_time - INTERVAL 60 SECOND AND start_time <= alert_time + INTERVAL 60 SECOND
    )
SELECT
    a.alert_id AS alert_id,
    a.time AS time,
    a.kind AS kind,
    a.severity AS severity,
    a.rule AS rule,
    a.count AS count,
    a.last_time AS last_time,
    a.summary AS summary,
    a.host AS host,
    a.agent_run AS agent_run,
    a.agent AS agent,
    a.resource AS resource,
    a.event_id AS event_id,
    -- The connect's own record when it is found, else what the alert sink recorded.
    if((SELECT count() FROM trigger) > 0, (SELECT any(destination) FROM trigger), a.destination) AS destination,
    (SELECT any(trigger_verdict) FROM trigger) AS verdict,
    (SELECT any(trigger_session) FROM trigger) AS session_id,
    level.1 - 1 AS depth,
    if(a.exec_id = '', '', level.2) AS exec_id,
    p.process_pid AS pid,
    p.process_uid AS uid,
    p.process_comm AS comm,
    p.image AS binary,
    p.process_argv AS argv,
    p.exec_time AS exec_time,
    p.parent AS parent_exec_id,
    toBool(arrayExists(g -> g.1 = a.host AND g.3 - INTERVAL 60 SECOND <= a.time AND g.4 + INTERVAL 60 SECOND >= a.time, (SELECT any(windows) FROM gaps))) AS gap_overlap
FROM alert AS a
ARRAY JOIN arrayZip(arrayEnumerate(chain), chain) AS level
LEFT JOIN processes AS p ON p.process = level.2
ORDER BY depth
