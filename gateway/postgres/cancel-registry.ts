import { randomInt } from 'node:crypto';

/** What a session does when an agent's CancelRequest carries its key. */
export interface CancelTarget {
  cancel(): void;
}

/**
 * The gateway hands each agent its own BackendKeyData (process id and secret), never the upstream's,
 * and maps it back here. A CancelRequest reaches a session only with the exact pair issued to that
 * session, so one agent cannot cancel another's statements, and upstream keys never leave the gateway.
 */
export class CancelRegistry {
  private readonly sessions = new Map<number, { secretKey: number; target: CancelTarget }>();

  register(target: CancelTarget): { processId: number; secretKey: number } {
    let processId: number;
    do processId = randomInt(1, 2 ** 31 - 1);
    while (this.sessions.has(processId));
    const secretKey = randomInt(-(2 ** 31), 2 ** 31 - 1);
    this.sessions.set(processId, { secretKey, target });
    return { processId, secretKey };
  }

  unregister(processId: number): void {
    this.sessions.delete(processId);
  }

  /** Cancels the session holding this key; returns false (and does nothing) for any other key. */
  cancel(processId: number, secretKey: number): boolean {
    const entry = this.sessions.get(processId);
    if (!entry || entry.secretKey !== secretKey) return false;
    entry.target.cancel();
    return true;
  }
}
