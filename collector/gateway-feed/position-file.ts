import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../platform/atomic-file';
import { GatewayPositionDamagedError } from './errors';

/** Where a subscription stands: every record up to `lastSeq` of `gatewayId` is with the store writer. */
export interface GatewayPosition {
  address: string;
  /** Empty until the first answer from the gateway. */
  gatewayId: string;
  lastSeq: bigint;
}

/**
 * The durable position of one gateway subscription: `<dataDir>/gateway-feed/<address>.position.json`,
 * replaced atomically and fsync'd (platform/atomic-file), so a crash leaves the old or the new position.
 */
export class PositionFile {
  readonly path: string;

  constructor(dataDir: string, readonly address: string) {
    const dir = join(dataDir, 'gateway-feed');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, `${address.replace(/[^A-Za-z0-9.-]/g, '_')}.position.json`);
  }

  load(): GatewayPosition {
    if (!existsSync(this.path)) return { address: this.address, gatewayId: '', lastSeq: 0n };
    let parsed: { address?: unknown; gatewayId?: unknown; lastSeq?: unknown };
    try {
      parsed = JSON.parse(readFileSync(this.path, 'utf8')) as typeof parsed;
    } catch (err) {
      throw new GatewayPositionDamagedError(this.path, (err as Error).message, err);
    }
    if (typeof parsed.gatewayId !== 'string' || typeof parsed.lastSeq !== 'string' || !/^\d+$/.test(parsed.lastSeq)) {
      throw new GatewayPositionDamagedError(this.path, 'gatewayId or lastSeq missing or malformed');
    }
    return { address: this.address, gatewayId: parsed.gatewayId, lastSeq: BigInt(parsed.lastSeq) };
  }

  save(position: GatewayPosition): void {
    const body = { address: position.address, gatewayId: position.gatewayId, lastSeq: position.lastSeq.toString(), savedAt: new Date().toISOString() };
    writeFileAtomic(this.path, `${JSON.stringify(body)}\n`, 0o600);
  }
}
