import type { Config } from '../../platform/config';
import type { Logger } from '../../platform/log';
import type { ConnectEvent__Output } from '../../proto/generated/gapwatch/v1/ConnectEvent';
import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import type { ProcessEvent__Output } from '../../proto/generated/gapwatch/v1/ProcessEvent';
import { hostGapAlert, type AlertProcess, type CollectorAlert } from '../alerts/alert';
import type { ConnectRecord, ExecRecord, LossRecord, SensorRecord } from '../sensor/host-sensor';
import type { ProcessEntry } from '../sensor/process-table';
import { auditGapRow, connectEventRow, deterministicId, processEventRow, type Row, type TableName } from '../store/rows';
import { clientName, clientTargets } from './client-targets';
import { normaliseIp, type EndpointMatch, type Inventory, type ProtectedResource } from './inventory';

export type CorrelateConfig = Config['collector']['correlate'];
export type Verdict = 'mediated' | 'bypass' | 'other';

/** What correlation needs from the process table: a process by exec_id, and its ancestors. */
export interface ProcessLookup {
  get(execId: string): ProcessEntry | undefined;
  lineage(execId: string): ProcessEntry[];
}

export interface CorrelatorOutput {
  /** A store row; the promise is the writer's back-pressure. */
  write(table: TableName, row: Row): void;
  alert(key: string, alert: CollectorAlert): void;
}

export interface CorrelatorOptions {
  host: string;
  config: CorrelateConfig;
  criticalLabels: readonly string[];
  /** Pids of gateway processes on this host (the collector's own in `gapwatch up`). */
  gatewayPids: ReadonlySet<number>;
  /**
   * Asked before a connect to a protected upstream is judged bypass: whether this pid is a local
   * gateway after all (false when surely not; a promise when it has to look).
   */
  confirmGateway?: (pid: number) => boolean | Promise<boolean>;
}

/** A verdict as the correlator decided it, for callers that watch (tests, bench). */
export interface VerdictNote {
  eventId: string;
  verdict: Verdict;
  resource: string;
  sessionId: string;
  pid: number;
  execId: string;
  agentRun: string;
}

interface PendingConnect {
  /** mediated: an agent's connect to a gateway listener; gateway: the gateway's own leg to a target. */
  role: 'mediated' | 'gateway';
  key: string;
  record: ConnectRecord;
  event: ConnectEvent__Output;
  wallNs: bigint;
  receivedMs: number;
}

interface KnownSession {
  sessionId: string;
  resource: string;
  startNs: bigint;
}

export interface CorrelatorStats {
  mediated: number;
  joined: number;
  unjoined: number;
  bypass: number;
  other: number;
  otherDropped: number;
  gatewayOwn: number;
  /** Gateway legs joined to their session by the session's upstream local address and port. */
  gatewayJoined: number;
  execDetections: number;
  secretsInArgv: number;
  lossRecords: number;
  pendingConnects: number;
  sessions: number;
}

const TRANSPORT: Record<ConnectRecord['transport'], ConnectEvent__Output['transport']> = {
  tcp: 'TRANSPORT_TCP',
  udp: 'TRANSPORT_UDP',
  'unix-stream': 'TRANSPORT_UNIX',
  'unix-dgram': 'TRANSPORT_UNIX',
  'unix-seqpacket': 'TRANSPORT_UNIX',
  other: 'TRANSPORT_UNSPECIFIED',
};

/**
 * Decides a verdict for every connect the sensor reports and writes it with the connect event:
 * to a gateway listener → mediated, joined with the gateway session whose client address:port is the
 * connect's local address:port (the session usually arrives after the connect, once the agent has
 * authenticated, so the row waits up to joinWindowMs for it; a mediated connect that started and found
 * no session by then is written unjoined, recorded in audit_gaps and alerted as mediated-unjoined); to a protected upstream from any
 * process but the gateway's → bypass, and an alert (the gateway's own leg is joined with its session
 * by the session's upstream local address:port, when the gateway journals one); else other. Execs of
 * known clients aimed at a protected upstream, secrets in argv and the sensor's loss records raise
 * alerts too.
 */
export class Correlator {
  private readonly pending = new Map<string, PendingConnect[]>();
  /** Insertion order = arrival order: the oldest waiting connect is first. */
  private readonly pendingQueue: PendingConnect[] = [];
  private readonly sessionsByClient = new Map<string, KnownSession[]>();
  private readonly sessionOrder: Array<{ key: string; sessionId: string }> = [];
  private readonly knownClients: ReadonlySet<string>;
  private otherSeen = 0;
  private localGatewayPids: ReadonlySet<number> = new Set();
  private timer: NodeJS.Timeout | null = null;
  readonly verdicts: Array<(note: VerdictNote) => void> = [];
  readonly counters: Omit<CorrelatorStats, 'pendingConnects' | 'sessions'> = {
    mediated: 0,
    joined: 0,
    unjoined: 0,
    bypass: 0,
    other: 0,
    otherDropped: 0,
    gatewayOwn: 0,
    gatewayJoined: 0,
    execDetections: 0,
    secretsInArgv: 0,
    lossRecords: 0,
  };

  constructor(
    private readonly inventory: Inventory,
    private readonly processes: ProcessLookup,
    private readonly options: CorrelatorOptions,
    private readonly output: CorrelatorOutput,
    private readonly log: Logger,
  ) {
    this.knownClients = new Set(options.config.knownClients);
  }

  start(tickMs = 200): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.expire(Date.now()), tickMs);
    this.timer.unref();
  }

  stats(): CorrelatorStats {
    return { ...this.counters, pendingConnects: this.pendingQueue.length, sessions: this.sessionOrder.length };
  }

  onSensorRecord(record: SensorRecord): void {
    switch (record.kind) {
      case 'connect':
        this.onConnect(record);
        return;
      case 'loss':
        this.onLoss(record);
        return;
      case 'exec':
        this.writeProcess(record, 'PROCESS_EVENT_KIND_EXEC');
        this.onExec(record);
        return;
      case 'fork':
        this.writeProcess(record, 'PROCESS_EVENT_KIND_FORK');
        return;
      case 'exit':
        this.writeProcess(record, 'PROCESS_EVENT_KIND_EXIT', record.exitCode ?? (record.signal === null ? 0 : 128 + record.signal));
        return;
    }
  }

  /** Gateway sessions are the other half of the join; everything else in the journal is not correlation's. */
  onJournalRecord(record: JournalRecord__Output): void {
    const session = record.session;
    if (!session) return;
    // The agent's side joins by the session's client address:port; the gateway's own leg to the target
    // by the session's upstream local address:port (journaled by gateways that hold one upstream
    // connection per session: PostgreSQL and SSH).
    if (session.client?.port) this.learnSession(endpointKey(session.client.ip, session.client.port), session);
    if (session.upstreamLocal?.port) this.learnSession(upstreamKey(session.upstreamLocal.ip, session.upstreamLocal.port), session);
  }

  private learnSession(key: string, session: NonNullable<JournalRecord__Output['session']>): void {
    let list = this.sessionsByClient.get(key);
    if (!list) {
      list = [];
      this.sessionsByClient.set(key, list);
    }
    if (!list.some((s) => s.sessionId === session.sessionId)) {
      list.push({ sessionId: session.sessionId, resource: session.resource, startNs: BigInt(session.startUnixNano || '0') });
      this.sessionOrder.push({ key, sessionId: session.sessionId });
      this.evictSessions();
    }
    const waiting = this.pending.get(key);
    if (!waiting) return;
    for (const connect of [...waiting]) {
      const match = this.sessionFor(key, connect.wallNs);
      if (match) this.finishMediated(connect, match);
    }
  }

  /** Writes every waiting mediated connect (joined or not) and stops the timer. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.expire(Infinity);
  }

  /** Writes mediated connects whose window has passed without a session. */
  expire(nowMs: number): void {
    const window = this.options.config.joinWindowMs;
    while (this.pendingQueue.length > 0) {
      const oldest = this.pendingQueue[0]!;
      const overflow = this.pendingQueue.length > this.options.config.maxPendingConnects;
      if (!overflow && nowMs - oldest.receivedMs < window) break;
      this.finishMediated(oldest, null, nowMs === Infinity ? 'the collector stopped before one arrived' : overflow ? 'the waiting list was full' : `no session within ${window} ms`);
    }
  }

  private onConnect(record: ConnectRecord): void {
    const match: EndpointMatch | undefined =
      record.unixPath !== null ? this.inventory.matchUnix(record.unixPath) : record.remoteAddress !== null && record.remotePort !== null ? this.inventory.matchInet(record.remoteAddress, record.remotePort) : undefined;
    if (!match) {
      this.counters.other++;
      const mode = this.options.config.otherConnects;
      // Decided before the event is built: under a connect storm most connects are dropped here, and
      // building one (its id is a hash) is most of what correlation costs per connect.
      if (mode === 'drop' || (mode === 'sample' && this.otherSeen++ % this.options.config.otherSampleEvery !== 0)) {
        this.counters.otherDropped++;
        return;
      }
      this.emit(this.connectEvent(record));
      return;
    }
    const event = this.connectEvent(record);
    const wallNs = BigInt(event.timeUnixNano);
    event.resource = match.resource.name;
    if (match.role === 'listener') {
      this.counters.mediated++;
      event.verdict = 'VERDICT_MEDIATED';
      if (!event.local || record.result === 'failed') {
        // A connect that never got a local port (refused, io_uring intent only) cannot have a session.
        this.emit(event);
        return;
      }
      this.awaitSession({ role: 'mediated', key: endpointKey(event.local.ip, event.local.port), record, event, wallNs, receivedMs: Date.now() });
      return;
    }
    if (this.isGateway(record)) {
      this.ownLeg(record, event, wallNs);
      return;
    }
    // A gateway restarted under a new pid is known only at the next look-up of its listeners; a
    // would-be bypass from a pid not yet checked is checked first, so its own legs raise no alert.
    const confirming = this.options.confirmGateway?.(record.pid) ?? false;
    if (confirming === false) {
      this.bypass(record, event, match, wallNs);
      return;
    }
    void Promise.resolve(confirming)
      .catch(() => false)
      .then((gateway) => (gateway ? this.ownLeg(record, event, wallNs) : this.bypass(record, event, match, wallNs)));
  }

  /** The gateway's own leg to its target: what the gateway exists to do. */
  private ownLeg(record: ConnectRecord, event: ConnectEvent__Output, wallNs: bigint): void {
    // Joined with the session that journals this local address:port as its upstream side, when one does.
    this.counters.gatewayOwn++;
    if (!event.local || record.result === 'failed') {
      this.emit(event);
      return;
    }
    this.awaitSession({ role: 'gateway', key: upstreamKey(event.local.ip, event.local.port), record, event, wallNs, receivedMs: Date.now() });
  }

  private bypass(record: ConnectRecord, event: ConnectEvent__Output, match: EndpointMatch, wallNs: bigint): void {
    this.counters.bypass++;
    event.verdict = 'VERDICT_BYPASS';
    this.emit(event);
    const where = destinationText(event);
    const attempted = record.result === 'failed' ? ` (attempt failed, errno ${record.errno})` : '';
    this.output.alert(`bypass|${record.execId}|${match.resource.name}|${where}`, {
      ...this.alertBase(record, event.eventId, wallNs),
      kind: 'bypass',
      rule: 'connect-bypass',
      severity: this.severityOf(match.resource),
      summary: `bypass: ${record.comm}[${record.pid}] connected straight to ${match.resource.name} at ${where}${attempted}${runText(record)}`,
      resource: match.resource.name,
      destination: where,
    });
  }

  /** Joins the connect now when its session is known, else keeps it waiting (up to joinWindowMs). */
  private awaitSession(pending: PendingConnect): void {
    const session = this.sessionFor(pending.key, pending.wallNs);
    if (session) {
      this.finishMediated(pending, session);
      return;
    }
    let list = this.pending.get(pending.key);
    if (!list) {
      list = [];
      this.pending.set(pending.key, list);
    }
    list.push(pending);
    this.pendingQueue.push(pending);
    this.expire(Date.now());
  }

  private connectEvent(record: ConnectRecord): ConnectEvent__Output {
    const destination = record.unixPath !== null ? { unixPath: record.unixPath } : { inet: { ip: normaliseIp(record.remoteAddress ?? ''), port: record.remotePort ?? 0 } };
    return {
      eventId: deterministicId('connect', this.options.host, record.execId, record.bootNs, record.socketCookie),
      host: this.options.host,
      timeUnixNano: wallNanos(record).toString(),
      process: { execId: record.execId, pid: record.pid, tgid: record.pid, agentRun: record.agentRunId ?? '' },
      transport: TRANSPORT[record.transport],
      destination,
      local: record.localAddress !== null && record.localPort ? { ip: normaliseIp(record.localAddress), port: record.localPort } : null,
      result: record.result === 'failed' ? -(record.errno ?? 1) : 0,
      verdict: 'VERDICT_OTHER',
      resource: '',
      sessionId: '',
    };
  }

  private onExec(record: ExecRecord): void {
    if (record.argvRedacted) {
      this.counters.secretsInArgv++;
      this.output.alert(`secret|${record.execId}`, {
        ...this.alertBase(record, execEventId(this.options.host, record), wallNanos(record)),
        kind: 'secret_in_argv',
        rule: 'secret-in-argv',
        severity: 'warning',
        summary: `secret in argv: ${record.comm}[${record.pid}] ran ${record.filename} with a credential on its command line (redacted)${runText(record)}`,
        resource: '',
        destination: '',
      });
    }
    const client = clientName(record.filename, record.argv, this.knownClients);
    if (client === null || this.isGateway(record)) return;
    for (const target of clientTargets(client, record.argv)) {
      const resource = this.aimedAt(target);
      if (!resource) continue;
      this.counters.execDetections++;
      const where = target.unixPath ?? `${target.host}:${target.port ?? ''}`;
      this.output.alert(`exec|${record.execId}|${resource.name}`, {
        ...this.alertBase(record, execEventId(this.options.host, record), wallNanos(record)),
        kind: 'bypass',
        rule: 'exec-client-to-upstream',
        severity: this.severityOf(resource),
        summary: `${client} aimed straight at ${resource.name} (${where}), not through the gateway${runText(record)}`,
        resource: resource.name,
        destination: where,
      });
      return;
    }
  }

  private aimedAt(target: ReturnType<typeof clientTargets>[number]): ProtectedResource | undefined {
    if (target.unixPath !== null) {
      const match = this.inventory.matchUnix(target.unixPath);
      return match?.role === 'upstream' ? match.resource : undefined;
    }
    const resource = this.inventory.upstreamHost(target.host, target.port);
    if (!resource) return undefined;
    if (target.port === null || resource.upstream.some((u) => u.port === target.port)) {
      // The same host may also run the gateway: a port that is a listener is the mediated path.
      const listener = resource.listener.some((l) => l.port === target.port);
      return listener ? undefined : resource;
    }
    return undefined;
  }

  private onLoss(record: LossRecord): void {
    this.counters.lossRecords++;
    const lost = [...Object.values(record.kernelDrops), ...Object.values(record.queueDrops)].reduce((a, b) => a + b, 0);
    const what = (drops: Record<string, number>): string =>
      Object.entries(drops)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${n} ${k}`)
        .join(', ') || 'none';
    const reason = `host sensor lost records: kernel ring buffer ${what(record.kernelDrops)}; reader queue ${what(record.queueDrops)}`;
    const wallNs = BigInt(Date.parse(record.time)) * 1_000_000n;
    const gapId = deterministicId('sensor-loss', this.options.host, record.bootNs);
    this.output.write(
      'audit_gaps',
      auditGapRow({ gapId, host: this.options.host, source: 'sensor', startUnixNano: wallNs.toString(), endUnixNano: wallNs.toString(), lost: String(lost), reason }),
    );
    this.output.alert(
      'loss|sensor',
      hostGapAlert({ gapId, rule: 'sensor-loss', severity: 'warning', host: this.options.host, timeUnixNano: wallNs.toString(), kernelBootNs: record.bootNs, summary: reason }),
    );
  }

  private finishMediated(connect: PendingConnect, session: KnownSession | null, why?: string): void {
    const list = this.pending.get(connect.key);
    if (list) {
      const at = list.indexOf(connect);
      if (at >= 0) list.splice(at, 1);
      if (list.length === 0) this.pending.delete(connect.key);
    }
    const queued = this.pendingQueue.indexOf(connect);
    if (queued >= 0) this.pendingQueue.splice(queued, 1);
    if (session) {
      if (connect.role === 'gateway') this.counters.gatewayJoined++;
      else this.counters.joined++;
      connect.event.sessionId = session.sessionId;
    } else if (connect.role === 'mediated') {
      this.counters.unjoined++;
      const event = connect.event;
      const reason = `mediated connect ${event.eventId} by pid ${event.process?.pid} from ${event.local?.ip}:${event.local?.port} to ${destinationText(event)} (${event.resource}) has no gateway session: ${why}`;
      this.log.warn({ eventId: event.eventId, resource: event.resource, local: event.local }, reason);
      this.output.write(
        'audit_gaps',
        auditGapRow({ gapId: deterministicId('unjoined', event.eventId), host: this.options.host, source: 'correlation', startUnixNano: event.timeUnixNano, endUnixNano: event.timeUnixNano, lost: '0', reason }),
      );
      // Something reached the gateway's port and no session says who: another program listening there,
      // a gateway whose journal is not subscribed, or records lost on the way. Security must look.
      const where = destinationText(event);
      this.output.alert(`unjoined|${connect.record.execId}|${event.resource}`, {
        ...this.alertBase(connect.record, event.eventId, connect.wallNs),
        kind: 'audit_gap',
        rule: 'mediated-unjoined',
        severity: 'warning',
        summary: `unjoined: ${connect.record.comm}[${connect.record.pid}] connected to the gateway for ${event.resource} at ${where} from ${event.local?.ip}:${event.local?.port} and no gateway session matches (${why})${runText(connect.record)}`,
        resource: event.resource,
        destination: where,
      });
    }
    this.emit(connect.event);
  }

  private sessionFor(key: string, wallNs: bigint): KnownSession | null {
    const list = this.sessionsByClient.get(key);
    if (!list) return null;
    const windowNs = BigInt(this.options.config.joinWindowMs) * 1_000_000n;
    let best: KnownSession | null = null;
    let bestDistance = 0n;
    for (const session of list) {
      const distance = session.startNs > wallNs ? session.startNs - wallNs : wallNs - session.startNs;
      if (distance > windowNs) continue;
      if (!best || distance < bestDistance) {
        best = session;
        bestDistance = distance;
      }
    }
    return best;
  }

  private evictSessions(): void {
    while (this.sessionOrder.length > this.options.config.maxSessions) {
      const { key, sessionId } = this.sessionOrder.shift()!;
      const list = this.sessionsByClient.get(key);
      if (!list) continue;
      const remaining = list.filter((s) => s.sessionId !== sessionId);
      if (remaining.length === 0) this.sessionsByClient.delete(key);
      else this.sessionsByClient.set(key, remaining);
    }
  }

  private emit(event: ConnectEvent__Output): void {
    this.output.write('connect_events', connectEventRow(event));
    const note: VerdictNote = {
      eventId: event.eventId,
      verdict: event.verdict.replace('VERDICT_', '').toLowerCase() as Verdict,
      resource: event.resource,
      sessionId: event.sessionId,
      pid: event.process?.pid ?? 0,
      execId: event.process?.execId ?? '',
      agentRun: event.process?.agentRun ?? '',
    };
    for (const listener of this.verdicts) listener(note);
  }

  private writeProcess(record: Exclude<SensorRecord, LossRecord | ConnectRecord>, kind: ProcessEvent__Output['kind'], exitCode = 0): void {
    const entry = this.processes.get(record.execId);
    const event: ProcessEvent__Output = {
      eventId: deterministicId('process', this.options.host, record.execId, record.bootNs, kind),
      host: this.options.host,
      timeUnixNano: wallNanos(record).toString(),
      kind,
      process: { execId: record.execId, pid: record.pid, tgid: record.pid, agentRun: record.agentRunId ?? '' },
      parentExecId: record.parentExecId ?? '',
      uid: record.uid ?? 0,
      gid: record.gid ?? 0,
      cgroupId: record.cgroupId ?? '0',
      comm: record.comm,
      filename: record.kind === 'exec' ? record.filename : (entry?.filename ?? ''),
      argv: record.kind === 'exec' ? record.argv : [],
      argvTruncated: record.kind === 'exec' ? record.argvTruncated : false,
      exitCode,
    };
    this.output.write('process_events', processEventRow(event));
  }

  /**
   * The pids of gateway processes found on this host by their listeners (collector/correlate/local-gateway.ts),
   * replacing the previous ones; the fixed options.gatewayPids stay.
   */
  setLocalGatewayPids(pids: ReadonlySet<number>): void {
    this.localGatewayPids = new Set(pids);
  }

  private isGateway(record: { pid: number; execId: string }): boolean {
    if (this.options.gatewayPids.has(record.pid) || this.localGatewayPids.has(record.pid)) return true;
    const executables = this.options.config.gatewayExecutables;
    if (executables.length === 0) return false;
    const entry = this.processes.get(record.execId);
    return entry !== undefined && executables.includes(entry.filename);
  }

  private severityOf(resource: ProtectedResource): CollectorAlert['severity'] {
    for (const label of this.options.criticalLabels) {
      const eq = label.indexOf('=');
      if (eq < 0 ? label in resource.labels : resource.labels[label.slice(0, eq)] === label.slice(eq + 1)) return 'critical';
    }
    return 'warning';
  }

  private alertBase(record: ConnectRecord | ExecRecord, eventId: string, wallNs: bigint): Omit<CollectorAlert, 'kind' | 'rule' | 'severity' | 'summary' | 'resource' | 'destination'> {
    const lineage = this.processes.lineage(record.execId).map(processOf);
    const self = this.processes.get(record.execId);
    return {
      alertId: deterministicId('alert', eventId),
      host: this.options.host,
      timeUnixNano: wallNs.toString(),
      kernelBootNs: record.bootNs,
      process: self ? processOf(self) : { execId: record.execId, pid: record.pid, comm: record.comm, filename: record.kind === 'exec' ? record.filename : '' },
      lineage,
      agentRun: record.agentRunId ? { execId: record.agentRunId, agent: record.agent ?? '' } : null,
      eventId,
      count: 1,
      lastTimeUnixNano: wallNs.toString(),
    };
  }
}

function processOf(entry: ProcessEntry): AlertProcess {
  return { execId: entry.execId, pid: entry.pid, comm: entry.comm, filename: entry.filename };
}

function endpointKey(ip: string, port: number): string {
  return `${normaliseIp(ip)}|${port}`;
}

/** Sessions are also found by their upstream local endpoint; a distinct key space from client endpoints. */
function upstreamKey(ip: string, port: number): string {
  return `upstream|${endpointKey(ip, port)}`;
}

/** Wall-clock ns: the record's millisecond wall time plus the sub-millisecond part of its kernel timestamp. */
function wallNanos(record: { time: string; bootNs: string }): bigint {
  return BigInt(Date.parse(record.time)) * 1_000_000n + (BigInt(record.bootNs) % 1_000_000n);
}

function execEventId(host: string, record: ExecRecord): string {
  return deterministicId('process', host, record.execId, record.bootNs, 'PROCESS_EVENT_KIND_EXEC');
}

function destinationText(event: ConnectEvent__Output): string {
  const d = event.destination;
  if (d?.unixPath) return d.unixPath;
  const ip = d?.inet?.ip ?? '';
  return `${ip.includes(':') ? `[${ip}]` : ip}:${d?.inet?.port ?? 0}`;
}

function runText(record: { agent: string | null; agentRunId: string | null }): string {
  return record.agentRunId ? ` in ${record.agent ?? 'agent'} run ${record.agentRunId}` : '';
}
