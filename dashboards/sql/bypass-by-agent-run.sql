-- Agent runs that reached a protected resource around the gateway: bypass connects per agent run and
-- resource, most first. The verdict = 'bypass' filter is a prefix range of connect_events'
-- ORDER BY (verdict, agent_run, time, event_id), and the grouping follows the next key column.
SELECT
    agent_run,
    resource,
    count() AS connects,
    uniqExact(exec_id) AS processes,
    min(time) AS first_seen,
    max(time) AS last_seen
FROM connect_events FINAL
WHERE verdict = 'bypass' AND time >= {since:DateTime64(9, 'UTC')}
GROUP BY agent_run, resource
ORDER BY connects DESC, agent_run, resource
