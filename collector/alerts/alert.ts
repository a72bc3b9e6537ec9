import type { Alert__Output } from '../../proto/generated/gapwatch/v1/Alert';
import { deterministicId } from '../store/rows';

export type AlertKind = 'bypass' | 'secret_in_argv' | 'audit_gap' | 'journal_tampered';
export type AlertSeverity = 'info' | 'warning' | 'critical';

/** A process as an alert names it. */
export interface AlertProcess {
  execId: string;
  pid: number;
  comm: string;
  filename: string;
}

/**
 * An alert as the sinks receive it: everything security needs to act without a query. `count` is how
 * many occurrences it stands for (de-duplicated and rate-limited ones are folded in, never lost).
 */
export interface CollectorAlert {
  alertId: string;
  kind: AlertKind;
  /** The detection that raised it, e.g. connect-bypass, exec-client-to-upstream, sensor-loss. */
  rule: string;
  severity: AlertSeverity;
  host: string;
  /** Wall-clock ns of the occurrence (first one, for a folded alert). */
  timeUnixNano: string;
  /** CLOCK_BOOTTIME ns of the kernel event that raised it, when one did (latency measurements). */
  kernelBootNs: string | null;
  summary: string;
  process: AlertProcess | null;
  /** The process, its parent, … up to the oldest ancestor the sensor knows. */
  lineage: AlertProcess[];
  agentRun: { execId: string; agent: string } | null;
  resource: string;
  /** Where the process connected, or what its argv aimed at. */
  destination: string;
  /** The event (connect, exec, gap) that raised it. */
  eventId: string;
  count: number;
  /** Occurrences of this same alert key since the first, when de-duplication folded them. */
  lastTimeUnixNano: string;
}

/**
 * An audit-gap alert about the host rather than a process (sensor loss, a collector that was down): the
 * alert for the audit_gaps row `gapId`, which is also its event.
 */
export function hostGapAlert(gap: { gapId: string; rule: string; severity: AlertSeverity; host: string; timeUnixNano: string; kernelBootNs: string | null; summary: string }): CollectorAlert {
  return {
    alertId: deterministicId('alert', gap.gapId),
    kind: 'audit_gap',
    rule: gap.rule,
    severity: gap.severity,
    host: gap.host,
    timeUnixNano: gap.timeUnixNano,
    kernelBootNs: gap.kernelBootNs,
    summary: gap.summary,
    process: null,
    lineage: [],
    agentRun: null,
    resource: '',
    destination: '',
    eventId: gap.gapId,
    count: 1,
    lastTimeUnixNano: gap.timeUnixNano,
  };
}

/** The proto form (gapwatch.v1.Alert), as WatchAlerts sends it and the store row is made from it. */
export function alertMessage(alert: CollectorAlert): Alert__Output {
  return {
    alertId: alert.alertId,
    host: alert.host,
    timeUnixNano: alert.timeUnixNano,
    kind: `ALERT_KIND_${alert.kind.toUpperCase()}` as Alert__Output['kind'],
    severity: `SEVERITY_${alert.severity.toUpperCase()}` as Alert__Output['severity'],
    summary: alert.summary,
    execId: alert.process?.execId ?? '',
    agentRun: alert.agentRun?.execId ?? '',
    resource: alert.resource,
    eventId: alert.eventId,
    rule: alert.rule,
    count: String(alert.count),
    lastTimeUnixNano: alert.lastTimeUnixNano,
    process: alert.process,
    lineage: alert.lineage,
    agent: alert.agentRun?.agent ?? '',
    destination: alert.destination,
  };
}
