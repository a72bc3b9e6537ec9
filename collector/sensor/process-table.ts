import type { AgentMatcher, ProcessImage } from './agent-signatures';
import { execIdOf, type HostIdentity } from './exec-id';

/** One process (not thread) the sensor knows, keyed by exec_id. */
export interface ProcessEntry {
  execId: string;
  pid: number;
  /** start_boottime in ns. */
  startNs: bigint;
  ppid: number;
  parentExecId: string | null;
  uid: number | null;
  gid: number | null;
  comm: string;
  filename: string;
  /** Redacted when it carried secrets; see argvRedacted. */
  argv: string[];
  argvRedacted: boolean;
  argvTruncated: boolean;
  /** The agent this process itself is (signature or marker match), or null. */
  agent: string | null;
  /** exec_id of the nearest ancestor-or-self that is an agent: the agent run it belongs to. */
  agentRunId: string | null;
  agentRunAgent: string | null;
  /** How the table learnt of it: seeded from /proc, or seen forking/exec'ing live. */
  source: 'proc' | 'fork' | 'exec';
  exited: boolean;
  exitStatus: number | null;
  /** Date.now() at exit; the entry leaves the table a grace period later. */
  exitedAtMs: number | null;
}

export interface ProcessIdentity {
  pid: number;
  startNs: bigint;
  ppid: number;
  parentStartNs: bigint | null;
  uid: number | null;
  gid: number | null;
  comm: string;
  /** cgroup v2 id, when the kernel reported it. */
  cgroupId?: bigint;
}

export interface ProcessTableOptions {
  /** How long an exited process stays (late connect records and children still resolve to it). */
  graceMs: number;
  /** Upper bound on entries; beyond it the oldest exited, then the oldest live, are evicted. */
  maxProcesses: number;
}

/** Where a signature cannot be seen (agent started elsewhere): an env or cgroup marker names the agent. */
export type MarkerProbe = (pid: number, cgroupId: bigint | null) => string | null;

export class ProcessTable {
  private readonly byExecId = new Map<string, ProcessEntry>();
  private readonly byPid = new Map<number, string>();
  evicted = 0;

  constructor(
    private readonly identity: HostIdentity,
    private readonly matcher: AgentMatcher,
    private readonly options: ProcessTableOptions,
    private readonly markerProbe: MarkerProbe | null = null,
  ) {}

  get size(): number {
    return this.byExecId.size;
  }

  /** Hashing is the costliest step per event; the last exec_id per pid answers almost every lookup. */
  private readonly idCache = new Map<number, { startNs: bigint; execId: string }>();

  execIdOf(pid: number, startNs: bigint): string {
    const cached = this.idCache.get(pid);
    if (cached && cached.startNs === startNs) return cached.execId;
    const execId = execIdOf(this.identity, pid, startNs);
    this.idCache.set(pid, { startNs, execId });
    return execId;
  }

  get(execId: string): ProcessEntry | undefined {
    return this.byExecId.get(execId);
  }

  /** The live (or most recent) process with this pid. */
  byPidNow(pid: number): ProcessEntry | undefined {
    const id = this.byPid.get(pid);
    return id === undefined ? undefined : this.byExecId.get(id);
  }

  /** The entry for this process, creating a bare one (parent linked) when it is new. */
  private ensure(identity: ProcessIdentity, source: ProcessEntry['source']): ProcessEntry {
    const execId = this.execIdOf(identity.pid, identity.startNs);
    let entry = this.byExecId.get(execId);
    if (!entry) {
      const parentExecId = identity.parentStartNs === null ? null : this.execIdOf(identity.ppid, identity.parentStartNs);
      const parent = parentExecId === null ? undefined : this.byExecId.get(parentExecId);
      entry = {
        execId,
        pid: identity.pid,
        startNs: identity.startNs,
        ppid: identity.ppid,
        parentExecId,
        uid: identity.uid,
        gid: identity.gid,
        comm: identity.comm,
        // Until it execs, a forked child runs its parent's image.
        filename: parent?.filename ?? '',
        argv: parent ? [...parent.argv] : [],
        argvRedacted: parent?.argvRedacted ?? false,
        argvTruncated: parent?.argvTruncated ?? false,
        agent: null,
        agentRunId: parent?.agentRunId ?? null,
        agentRunAgent: parent?.agentRunAgent ?? null,
        source,
        exited: false,
        exitStatus: null,
        exitedAtMs: null,
      };
      this.byExecId.set(execId, entry);
      this.enforceBound();
    }
    this.byPid.set(identity.pid, execId);
    return entry;
  }

  /** A process that existed before the sensor started; parents must be seeded before children. */
  seed(identity: ProcessIdentity, image: ProcessImage & { argvRedacted: boolean }): ProcessEntry {
    const entry = this.ensure(identity, 'proc');
    this.applyImage(entry, image, false, null);
    return entry;
  }

  fork(identity: ProcessIdentity): ProcessEntry {
    return this.ensure(identity, 'fork');
  }

  exec(identity: ProcessIdentity, image: ProcessImage & { argvRedacted: boolean; argvTruncated: boolean }): ProcessEntry {
    const entry = this.ensure(identity, 'exec');
    entry.comm = identity.comm;
    entry.uid = identity.uid;
    entry.gid = identity.gid;
    this.applyImage(entry, image, true, identity.cgroupId ?? null);
    entry.argvTruncated = image.argvTruncated;
    return entry;
  }

  exit(identity: ProcessIdentity, exitStatus: number, nowMs: number): ProcessEntry {
    const entry = this.ensure(identity, 'fork');
    entry.exited = true;
    entry.exitStatus = exitStatus;
    entry.exitedAtMs = nowMs;
    return entry;
  }

  private applyImage(entry: ProcessEntry, image: ProcessImage & { argvRedacted: boolean }, live: boolean, cgroupId: bigint | null): void {
    entry.filename = image.filename;
    entry.comm = image.comm;
    entry.argv = [...image.argv];
    entry.argvRedacted = image.argvRedacted;
    // Signatures are matched on the real argv (before redaction would not change names) and image.
    let agent = this.matcher.match(image);
    if (agent === null && entry.agentRunId === null && this.markerProbe) agent = live || entry.source === 'proc' ? this.markerProbe(entry.pid, cgroupId) : null;
    if (agent !== null) {
      entry.agent = agent;
      entry.agentRunId = entry.execId;
      entry.agentRunAgent = agent;
    } else if (entry.agent !== null && entry.agentRunId === entry.execId) {
      // The agent exec'd into something else: the process stays in the run it started.
      entry.agent = null;
    }
  }

  /** The chain from this process up to the oldest ancestor the table knows. */
  lineage(execId: string): ProcessEntry[] {
    const chain: ProcessEntry[] = [];
    const seen = new Set<string>();
    let current = this.byExecId.get(execId);
    while (current && !seen.has(current.execId)) {
      chain.push(current);
      seen.add(current.execId);
      current = current.parentExecId === null ? undefined : this.byExecId.get(current.parentExecId);
    }
    return chain;
  }

  /** Removes processes that exited more than the grace period ago. */
  sweep(nowMs: number): number {
    let removed = 0;
    for (const [execId, entry] of this.byExecId) {
      if (entry.exitedAtMs !== null && nowMs - entry.exitedAtMs >= this.options.graceMs) {
        this.remove(execId, entry);
        removed++;
      }
    }
    return removed;
  }

  private remove(execId: string, entry: ProcessEntry): void {
    this.byExecId.delete(execId);
    if (this.byPid.get(entry.pid) === execId) this.byPid.delete(entry.pid);
    if (this.idCache.get(entry.pid)?.execId === execId) this.idCache.delete(entry.pid);
  }

  private enforceBound(): void {
    if (this.byExecId.size <= this.options.maxProcesses) return;
    // Map iteration is insertion order: the first exited entry is the oldest one to go.
    for (const [execId, entry] of this.byExecId) {
      if (entry.exited) {
        this.remove(execId, entry);
        this.evicted++;
        return;
      }
    }
    const [execId, entry] = this.byExecId.entries().next().value as [string, ProcessEntry];
    this.remove(execId, entry);
    this.evicted++;
  }
}
