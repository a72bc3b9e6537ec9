-- bypass-by-host: Which hosts had connects to protected resources around the gateway? Most bypass
-- connects first, with how many processes and agent runs made them and which resources they reached.
-- @param limit UInt32 = 100 | at most this many rows
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
    per_host AS (
        SELECT
            host AS bypass_host,
            count() AS host_connects,
            uniqExact(exec_id) AS host_processes,
            uniqExactIf(agent_run, agent_run != '') AS host_runs,
            groupUniqArray(resource) AS host_resources,
            min(time) AS host_first,
            max(time) AS host_last
        FROM connect_events FINAL
        WHERE verdict = 'bypass'
            AND time >= {from:DateTime64(9, 'UTC')} AND time < {to:DateTime64(9, 'UTC')}
            AND ({host:String} = '' OR host = {host:String})
            AND ({resource:String} = '' OR resource = {resource:String})
            AND ({agent:String} = '' OR agent_run IN matching_runs)
        GROUP BY host
    )
SELECT
    bypass_host AS host,
    host_connects AS connects,
    host_processes AS processes,
    host_runs AS agent_runs,
    arraySort(host_resources) AS resources,
    host_first AS first_seen,
    host_last AS last_seen,
    toBool(arrayExists(g -> g.1 = bypass_host AND g.3 - INTERVAL 60 SECOND <= host_last AND g.4 + INTERVAL 60 SECOND >= host_first, gaps)) AS gap_overlap
FROM per_host
ORDER BY connects DESC, host
LIMIT {limit:UInt32}
