-- coverage-trend: How did mediated and bypass connects to protected resources develop over time?
-- One row per time bucket of bucket_s seconds (Grafana passes its interval), oldest first.
-- @param bucket_s UInt32 = 3600 | bucket width in seconds
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
    buckets AS (
        SELECT
            toStartOfInterval(time, toIntervalSecond(greatest({bucket_s:UInt32}, 1))) AS bucket,
            countIf(verdict = 'mediated') AS bucket_mediated,
            countIf(verdict = 'bypass') AS bucket_bypass,
            groupUniqArray(host) AS bucket_hosts
        FROM connect_events FINAL
        WHERE verdict IN ('mediated', 'bypass')
            AND time >= {from:DateTime64(9, 'UTC')} AND time < {to:DateTime64(9, 'UTC')}
            AND ({host:String} = '' OR host = {host:String})
            AND ({resource:String} = '' OR resource = {resource:String})
            AND ({agent:String} = '' OR agent_run IN matching_runs)
        GROUP BY bucket
    )
SELECT
    bucket AS time,
    bucket_mediated AS mediated,
    bucket_bypass AS bypass,
    round(100 * bucket_mediated / (bucket_mediated + bucket_bypass), 2) AS coverage_pct,
    toBool(arrayExists(g -> has(bucket_hosts, g.1) AND g.3 - INTERVAL 60 SECOND < bucket + toIntervalSecond(greatest({bucket_s:UInt32}, 1)) AND g.4 + INTERVAL 60 SECOND >= bucket, gaps)) AS gap_overlap
FROM buckets
ORDER BY time
