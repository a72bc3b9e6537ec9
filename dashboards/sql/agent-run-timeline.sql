-- Everything one agent run did on the host, in time order: execs and connects with their verdicts.
-- Pass the run with --param agent_run=<exec_id>. process_events is ORDER BY (agent_run, time, …) and
-- connect_events ORDER BY (verdict, agent_run, time, …), so both reads are key ranges per run.
SELECT time, 'process' AS what, toString(kind) AS detail, exec_id, filename AS target, '' AS verdict, '' AS resource
FROM process_events FINAL
WHERE agent_run = {agent_run:String} AND time >= {since:DateTime64(9, 'UTC')}
UNION ALL
SELECT time, 'connect' AS what, toString(transport) AS detail, exec_id,
    if(destination_unix_path != '', destination_unix_path, concat(destination_ip, ':', toString(destination_port))) AS target,
    toString(verdict) AS verdict, resource
FROM connect_events FINAL
WHERE agent_run = {agent_run:String} AND time >= {since:DateTime64(9, 'UTC')}
ORDER BY time
