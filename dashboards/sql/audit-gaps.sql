-- What the system knows it lost (ring-buffer overflow, spool overflow, journal truncation) since a point
-- in time. audit_gaps is ORDER BY (source, start_time, gap_id).
SELECT source, host, start_time, end_time, lost, reason
FROM audit_gaps FINAL
WHERE start_time >= {since:DateTime64(9, 'UTC')}
ORDER BY source, start_time
