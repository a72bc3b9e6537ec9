-- Alerts since a point in time, newest first. alerts is ORDER BY (kind, time, alert_id): each kind is a
-- key range, read in time order.
SELECT time, kind, severity, summary, agent_run, resource, exec_id, event_id
FROM alerts FINAL
WHERE time >= {since:DateTime64(9, 'UTC')}
ORDER BY time DESC
