-- unattributed-sessions: Which gateway sessions does no host connect explain? A session no mediated
-- connect was joined with came from a host without the sensor, from a process the sensor missed (see
-- audit gaps), or from a client the correlator could not match by address and port.
-- @param limit UInt32 = 100 | at most this many rows
-- host and agent do not apply: these sessions have no host process.
-- Attribution: the mediated connects joined with each session (the gateway's own upstream leg, verdict
-- other, is no attribution), read from connect_events by the session_id bloom filter within an hour of the
-- range (sensor and gateway clocks may differ).
WITH
    (
        SELECT groupArray((host, source, start_time, end_time)) FROM audit_gaps FINAL
        WHERE end_time >= {from:DateTime64(9, 'UTC')} - INTERVAL 60 SECOND AND start_time <= {to:DateTime64(9, 'UTC')} + INTERVAL 60 SECOND
    ) AS gaps,
    in_range AS (
        SELECT session_id, gateway_id, identity_subject, identity_claims, resource, protocol, client_ip, client_port, start_time, end_time, outcome
        FROM gateway_sessions FINAL
        WHERE start_time >= {from:DateTime64(9, 'UTC')} AND start_time < {to:DateTime64(9, 'UTC')}
            AND ({resource:String} = '' OR resource = {resource:String})
    ),
    attributed AS (
        SELECT DISTINCT session_id FROM connect_events
        WHERE verdict = 'mediated'
            AND time >= {from:DateTime64(9, 'UTC')} - INTERVAL 1 HOUR AND time < {to:DateTime64(9, 'UTC')} + INTERVAL 1 HOUR
            AND session_id IN (SELECT session_id FROM in_range)
    )
SELECT
    session_id,
    start_time,
    end_time,
    gateway_id,
    identity_subject,
    identity_claims,
    resource,
    protocol,
    concat(client_ip, ':', toString(client_port)) AS client,
    outcome,
    toBool(arrayExists(g -> (g.1 = gateway_id OR g.2 IN ('spool', 'store', 'collector', 'sensor', 'correlation'))
        AND g.3 - INTERVAL 60 SECOND <= if(end_time = toDateTime64(0, 9, 'UTC'), {to:DateTime64(9, 'UTC')}, end_time)
        AND g.4 + INTERVAL 60 SECOND >= start_time, gaps)) AS gap_overlap
FROM in_range
WHERE session_id NOT IN (SELECT session_id FROM attributed)
ORDER BY start_time DESC, session_id
LIMIT {limit:UInt32}
