-- audit-gaps: Where is the data known to be incomplete? Every loss the system recorded (ring-buffer
-- overflow, spool overflow, journal truncation, gateway feed jumps, unjoined connects), overlapping the
-- time range, newest first. Other queries mark rows within 60 s of one of these windows with gap_overlap.
-- @param limit UInt32 = 1000 | at most this many rows
-- resource and agent do not apply: a loss is known per host (or gateway) and source only.
SELECT
    gap_id,
    source,
    host,
    start_time,
    end_time,
    dateDiff('millisecond', start_time, end_time) / 1000 AS duration_s,
    lost,
    reason
FROM audit_gaps FINAL
WHERE end_time >= {from:DateTime64(9, 'UTC')} AND start_time < {to:DateTime64(9, 'UTC')}
    AND ({host:String} = '' OR host = {host:String})
ORDER BY start_time DESC, source, gap_id
LIMIT {limit:UInt32}
