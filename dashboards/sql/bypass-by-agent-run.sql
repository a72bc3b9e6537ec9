-- bypass-by-agent-run: Which agent runs reached protected resources around the gateway, and how often?
-- Top bypassing agent runs, most bypass connects first, with the agent (the comm of the run's own exec),
-- the resources, hosts and binaries involved. Connects outside any agent run are grouped under ''.
-- @param limit UInt32 = 100 | at most this many rows
-- verdict = 'bypass' is a prefix range of connect_events' ORDER BY (verdict, agent_run, time, event_id)
-- and the grouping follows the next key column.
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
    runs AS (
        SELECT
            agent_run,
            count() AS connects,
            uniqExact(exec_id) AS processes,
            groupUniqArray(resource) AS resources,
            groupUniqArray(host) AS hosts_seen,
            min(time) AS first_seen,
            max(time) AS last_seen
        FROM connect_events FINAL
        WHERE verdict = 'bypass'
            AND time >= {from:DateTime64(9, 'UTC')} AND time < {to:DateTime64(9, 'UTC')}
            AND ({host:String} = '' OR host = {host:String})
            AND ({resource:String} = '' OR resource = {resource:String})
            AND ({agent:String} = '' OR agent_run IN matching_runs)
        GROUP BY agent_run
        ORDER BY connects DESC, agent_run
        LIMIT {limit:UInt32}
    ),
    run_processes AS (
        SELECT agent_run, argMaxIf(comm, time, exec_id = agent_run) AS agent, groupUniqArray(filename) AS binaries_seen
        FROM process_events
        WHERE kind = 'exec' AND agent_run IN (SELECT agent_run FROM runs WHERE agent_run != '')
        GROUP BY agent_run
    )
SELECT
    runs.agent_run AS agent_run,
    run_processes.agent AS agent,
    runs.connects AS connects,
    runs.processes AS processes,
    arraySort(runs.resources) AS resources,
    arraySort(runs.hosts_seen) AS hosts,
    arraySort(run_processes.binaries_seen) AS binaries,
    runs.first_seen AS first_seen,
    runs.last_seen AS last_seen,
    toBool(arrayExists(g -> has(hosts_seen, g.1) AND g.3 - INTERVAL 60 SECOND <= last_seen AND g.4 + INTERVAL 60 SECOND >= first_seen, gaps)) AS gap_overlap
FROM runs
LEFT JOIN run_processes ON run_processes.agent_run = runs.agent_run
ORDER BY connects DESC, agent_run
