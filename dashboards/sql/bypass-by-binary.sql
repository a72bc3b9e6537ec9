-- bypass-by-binary: Which programs (the executable of the connecting process) reached protected
-- resources around the gateway? Most bypass connects first; a process whose exec the sensor never saw
-- shows binary ''.
-- @param limit UInt32 = 100 | at most this many rows
-- The bypass connects are reduced per process first; only those processes' exec records are then read,
-- by key, from process_execs (migration 0005).
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
    per_process AS (
        SELECT
            exec_id,
            count() AS process_connects,
            any(agent_run) AS process_run,
            groupUniqArray(resource) AS process_resources,
            any(host) AS process_host,
            min(time) AS process_first,
            max(time) AS process_last
        FROM connect_events FINAL
        WHERE verdict = 'bypass'
            AND time >= {from:DateTime64(9, 'UTC')} AND time < {to:DateTime64(9, 'UTC')}
            AND ({host:String} = '' OR host = {host:String})
            AND ({resource:String} = '' OR resource = {resource:String})
            AND ({agent:String} = '' OR agent_run IN matching_runs)
        GROUP BY exec_id
    ),
    images AS (
        SELECT exec_id, argMax(filename, time) AS image, argMax(comm, time) AS image_comm
        FROM process_execs
        WHERE exec_id IN (SELECT exec_id FROM per_process)
        GROUP BY exec_id
    )
SELECT
    images.image AS binary,
    groupUniqArray(images.image_comm) AS comms,
    sum(per_process.process_connects) AS connects,
    count() AS processes,
    uniqExactIf(per_process.process_run, per_process.process_run != '') AS agent_runs,
    arraySort(groupUniqArrayArray(per_process.process_resources)) AS resources,
    arraySort(groupUniqArray(per_process.process_host)) AS hosts,
    min(per_process.process_first) AS first_seen,
    max(per_process.process_last) AS last_seen,
    toBool(arrayExists(g -> has(hosts, g.1) AND g.3 - INTERVAL 60 SECOND <= last_seen AND g.4 + INTERVAL 60 SECOND >= first_seen, gaps)) AS gap_overlap
FROM per_process
LEFT JOIN images ON images.exec_id = per_process.exec_id
GROUP BY binary
ORDER BY connects DESC, binary
LIMIT {limit:UInt32}
