-- overview: The one-row summary for the overview page: connects to protected resources, how many went
-- through the gateway (coverage %), how many bypassed it and how many bypasses the period of equal
-- length just before `from` had (the trend; coverage over time is coverage-trend); alerts, gateway
-- sessions, sessions no host connect explains, and audit gaps in the range.
-- The previous period is [from - (to - from), from); only its bypasses are counted, which are a prefix
-- range of connect_events' ORDER BY (verdict, …). Session attribution: the mediated connects joined with
-- the sessions (not the gateway's own leg, verdict other), by the session_id bloom filter, within an hour.
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
    fromUnixTimestamp64Nano(2 * toUnixTimestamp64Nano({from:DateTime64(9, 'UTC')}) - toUnixTimestamp64Nano({to:DateTime64(9, 'UTC')}), 'UTC') AS previous_from,
    counts AS (
        SELECT
            countIf(verdict = 'mediated') AS now_mediated,
            countIf(verdict = 'bypass') AS now_bypass,
            uniqExactIf(agent_run, verdict = 'bypass' AND agent_run != '') AS now_bypass_runs
        FROM connect_events FINAL
        WHERE verdict IN ('mediated', 'bypass')
            AND time >= {from:DateTime64(9, 'UTC')} AND time < {to:DateTime64(9, 'UTC')}
            AND ({host:String} = '' OR host = {host:String})
            AND ({resource:String} = '' OR resource = {resource:String})
            AND ({agent:String} = '' OR agent_run IN matching_runs)
    ),
    previous AS (
        SELECT count() AS before_bypass
        FROM connect_events FINAL
        WHERE verdict = 'bypass'
            AND time >= previous_from AND time < {from:DateTime64(9, 'UTC')}
            AND ({host:String} = '' OR host = {host:String})
            AND ({resource:String} = '' OR resource = {resource:String})
            AND ({agent:String} = '' OR agent_run IN matching_runs)
    ),
    alert_counts AS (
        SELECT count() AS alert_total, countIf(severity = 'critical') AS alert_critical
        FROM alerts FINAL
        WHERE time >= {from:DateTime64(9, 'UTC')} AND time < {to:DateTime64(9, 'UTC')}
            AND ({host:String} = '' OR host = {host:String})
            AND ({resource:String} = '' OR resource = {resource:String})
            AND ({agent:String} = '' OR agent_run IN matching_runs)
    ),
    session_ids AS (
        SELECT session_id FROM gateway_sessions FINAL
        WHERE start_time >= {from:DateTime64(9, 'UTC')} AND start_time < {to:DateTime64(9, 'UTC')}
            AND ({resource:String} = '' OR resource = {resource:String})
    ),
    session_counts AS (
        SELECT
            (SELECT count() FROM session_ids) AS session_total,
            (SELECT count() FROM session_ids) - (
                SELECT uniqExact(session_id) FROM connect_events
                WHERE verdict = 'mediated'
                    AND time >= {from:DateTime64(9, 'UTC')} - INTERVAL 1 HOUR AND time < {to:DateTime64(9, 'UTC')} + INTERVAL 1 HOUR
                    AND session_id IN session_ids
            ) AS session_unattributed
    )
SELECT
    now_mediated + now_bypass AS connects,
    now_mediated AS mediated,
    now_bypass AS bypass,
    if(now_mediated + now_bypass = 0, 100, round(100 * now_mediated / (now_mediated + now_bypass), 2)) AS coverage_pct,
    now_bypass_runs AS bypass_agent_runs,
    before_bypass AS previous_bypass,
    toInt64(now_bypass) - toInt64(before_bypass) AS bypass_change,
    alert_total AS alerts,
    alert_critical AS critical_alerts,
    session_total AS sessions,
    session_unattributed AS unattributed_sessions,
    length(arrayFilter(g -> {host:String} = '' OR g.1 = {host:String}, gaps)) AS audit_gaps,
    toBool(arrayExists(g -> ({host:String} = '' OR g.1 = {host:String}) AND g.3 - INTERVAL 60 SECOND <= {to:DateTime64(9, 'UTC')} AND g.4 + INTERVAL 60 SECOND >= {from:DateTime64(9, 'UTC')}, gaps)) AS gap_overlap
FROM counts, previous, alert_counts, session_counts
