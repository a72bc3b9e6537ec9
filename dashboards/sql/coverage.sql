-- coverage: What share of connects to protected resources went through the gateway (mediated) and what
-- share went around it (bypass), per resource, agent, agent run, host or day?
-- @param group_by String = resource | one of resource, agent, agent_run, host, day
-- @param limit UInt32 = 100 | at most this many rows
-- Only connects with a verdict of mediated or bypass count: that prefix of connect_events'
-- ORDER BY (verdict, agent_run, time, event_id) is the traffic aimed at protected resources. Rows are
-- reduced in one pass by the key asked for (by run for agent); for group_by agent the runs' own exec
-- records (process_execs rows with exec_id = agent_run, migration 0005) name the agent.
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
    per_key AS (
        -- One pass keyed by what is asked for; for agent, by run, named below. With the constant
        -- conditions folded, the key is a single column.
        SELECT
            multiIf(
                {group_by:String} = 'resource', toString(resource),
                {group_by:String} = 'host', toString(host),
                {group_by:String} = 'day', toString(toDate(time)),
                agent_run
            ) AS scan_key,
            countIf(verdict = 'mediated') AS key_mediated,
            countIf(verdict = 'bypass') AS key_bypass,
            groupUniqArray(host) AS key_hosts,
            min(time) AS key_first,
            max(time) AS key_last
        FROM connect_events FINAL
        WHERE verdict IN ('mediated', 'bypass')
            AND time >= {from:DateTime64(9, 'UTC')} AND time < {to:DateTime64(9, 'UTC')}
            AND ({host:String} = '' OR host = {host:String})
            AND ({resource:String} = '' OR resource = {resource:String})
            AND ({agent:String} = '' OR agent_run IN matching_runs)
            AND throwIf({group_by:String} NOT IN ('resource', 'agent', 'agent_run', 'host', 'day'), 'group_by must be one of resource, agent, agent_run, host, day') = 0
        GROUP BY scan_key
    ),
    roots AS (
        SELECT exec_id AS run, argMax(comm, time) AS agent FROM process_execs
        WHERE {group_by:String} = 'agent' AND exec_id = agent_run
        GROUP BY exec_id
    ),
    keyed AS (
        SELECT
            multiIf(
                {group_by:String} NOT IN ('agent', 'agent_run'), per_key.scan_key,
                per_key.scan_key = '', '(no agent run)',
                {group_by:String} = 'agent_run', per_key.scan_key,
                if(roots.agent = '', '(unknown agent)', roots.agent)
            ) AS group_key,
            sum(per_key.key_mediated) AS group_mediated,
            sum(per_key.key_bypass) AS group_bypass,
            groupUniqArrayArray(per_key.key_hosts) AS group_hosts,
            min(per_key.key_first) AS first_seen,
            max(per_key.key_last) AS last_seen
        FROM per_key
        LEFT JOIN roots ON roots.run = per_key.scan_key
        GROUP BY group_key
    )
SELECT
    group_key,
    group_mediated + group_bypass AS connects,
    group_mediated AS mediated,
    group_bypass AS bypass,
    round(100 * group_mediated / (group_mediated + group_bypass), 2) AS coverage_pct,
    round(100 * group_bypass / (group_mediated + group_bypass), 2) AS bypass_pct,
    length(group_hosts) AS hosts,
    first_seen,
    last_seen,
    toBool(arrayExists(g -> has(group_hosts, g.1) AND g.3 - INTERVAL 60 SECOND <= last_seen AND g.4 + INTERVAL 60 SECOND >= first_seen, gaps)) AS gap_overlap
FROM keyed
ORDER BY if({group_by:String} = 'day', group_key, '') ASC, bypass DESC, group_key
LIMIT {limit:UInt32}
