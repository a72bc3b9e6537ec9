-- coverage: What share of connects to protected resources went through the gateway (mediated) and what
-- share went around it (bypass), per resource, agent, agent run, host or day?
-- @param group_by String = resource | one of resource, agent, agent_run, host, day
-- @param limit UInt32 = 100 | at most this many rows
-- Only connects with a verdict of mediated or bypass count: that prefix of connect_events'
-- ORDER BY (verdict, agent_run, time, event_id) is the traffic aimed at protected resources. Rows are
-- first reduced per (host, resource, agent run, day), so the agent name lookup only reads the runs that
-- occur. The agent of a run is the comm of the run's own exec (process_events row with exec_id = agent_run).
WITH
    (
        SELECT groupArray((host, source, start_time, end_time)) FROM audit_gaps FINAL
        WHERE end_time >= {from:DateTime64(9, 'UTC')} - INTERVAL 60 SECOND AND start_time <= {to:DateTime64(9, 'UTC')} + INTERVAL 60 SECOND
    ) AS gaps,
    matching_runs AS (
        SELECT exec_id FROM process_events
        WHERE {agent:String} != '' AND kind = 'exec' AND exec_id = agent_run
            AND (comm = {agent:String} OR basename(filename) = {agent:String} OR positionCaseInsensitive(arrayStringConcat(argv, ' '), {agent:String}) > 0)
    ),
    per_run AS (
        SELECT
            host,
            resource,
            agent_run,
            toDate(time) AS day,
            countIf(verdict = 'mediated') AS run_mediated,
            countIf(verdict = 'bypass') AS run_bypass,
            min(time) AS run_first,
            max(time) AS run_last
        FROM connect_events FINAL
        WHERE verdict IN ('mediated', 'bypass')
            AND time >= {from:DateTime64(9, 'UTC')} AND time < {to:DateTime64(9, 'UTC')}
            AND ({host:String} = '' OR host = {host:String})
            AND ({resource:String} = '' OR resource = {resource:String})
            AND ({agent:String} = '' OR agent_run IN matching_runs)
            AND throwIf({group_by:String} NOT IN ('resource', 'agent', 'agent_run', 'host', 'day'), 'group_by must be one of resource, agent, agent_run, host, day') = 0
        GROUP BY host, resource, agent_run, day
    ),
    roots AS (
        SELECT exec_id AS run, argMax(comm, time) AS agent FROM process_events
        WHERE {group_by:String} = 'agent' AND kind = 'exec' AND exec_id = agent_run AND agent_run IN (SELECT agent_run FROM per_run)
        GROUP BY exec_id
    )
SELECT
    multiIf(
        {group_by:String} = 'resource', per_run.resource,
        {group_by:String} = 'agent', if(per_run.agent_run = '', '(no agent run)', if(roots.agent = '', '(unknown agent)', roots.agent)),
        {group_by:String} = 'agent_run', if(per_run.agent_run = '', '(no agent run)', per_run.agent_run),
        {group_by:String} = 'host', per_run.host,
        toString(per_run.day)
    ) AS group_key,
    sum(per_run.run_mediated) + sum(per_run.run_bypass) AS connects,
    sum(per_run.run_mediated) AS mediated,
    sum(per_run.run_bypass) AS bypass,
    round(100 * sum(per_run.run_mediated) / (sum(per_run.run_mediated) + sum(per_run.run_bypass)), 2) AS coverage_pct,
    round(100 * sum(per_run.run_bypass) / (sum(per_run.run_mediated) + sum(per_run.run_bypass)), 2) AS bypass_pct,
    uniqExact(per_run.host) AS hosts,
    uniqExact(per_run.agent_run) AS agent_runs,
    min(per_run.run_first) AS first_seen,
    max(per_run.run_last) AS last_seen,
    toBool(arrayExists(g -> has(groupUniqArray(per_run.host), g.1) AND g.3 - INTERVAL 60 SECOND <= max(per_run.run_last) AND g.4 + INTERVAL 60 SECOND >= min(per_run.run_first), gaps)) AS gap_overlap
FROM per_run
LEFT JOIN roots ON roots.run = per_run.agent_run
GROUP BY group_key
ORDER BY if({group_by:String} = 'day', group_key, '') ASC, bypass DESC, group_key
LIMIT {limit:UInt32}
