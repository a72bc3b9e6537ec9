import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { GatewayFeedEntry } from '../../collector/gateway-feed/config-schema';
import { AuditServer } from '../../gateway/audit/audit-server';
import { auditConfigSchema } from '../../gateway/audit/config-schema';
import { createDevCertificates, type DevCertificateFiles } from '../../gateway/audit/dev-certificates';
import { resourceCatalog } from '../../gateway/audit/resource-catalog';
import { createLogger } from '../../platform/log';
import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import type { AuditClient } from '../../proto/generated/gapwatch/v1/Audit';
import { nodeClient } from '../gateway/postgres/clients';
import { startGateway, type GatewayOptions, type GatewayUnderTest } from './pg-gateway';

/**
 * The PostgreSQL gateway (real PostgreSQL, real journal) with its Audit service on a random port,
 * secured by a fresh development CA from `createDevCertificates`.
 */
export interface AuditGatewayUnderTest {
  gw: GatewayUnderTest;
  audit: AuditServer;
  certs: DevCertificateFiles;
  address: string;
  /** A collector entry with the valid client certificate. */
  entry: GatewayFeedEntry;
  /** Runs `count` statements through the gateway on one connection, then closes it (one session). */
  traffic(count: number, label?: string): Promise<void>;
  head(): Promise<bigint>;
  /** Stops the Audit service and starts a new one on the same port (a gateway restart, as subscribers see it). */
  restartAudit(): Promise<void>;
  stop(): Promise<void>;
}

export async function startAuditGateway(options: GatewayOptions = {}): Promise<AuditGatewayUnderTest> {
  const gw = await startGateway(options);
  const certsDir = mkdtempSync(join(tmpdir(), 'gapwatch-certs-'));
  try {
    const certs = createDevCertificates({ dir: certsDir });
    const serve = async (port: number): Promise<AuditServer> => {
      const config = auditConfigSchema.parse({ listen: { host: '127.0.0.1', port }, tls: { caFile: certs.caCert, certFile: certs.gatewayCert, keyFile: certs.gatewayKey } });
      const server = new AuditServer({
        config,
        journal: gw.journal,
        log: createLogger({ level: 'fatal', format: 'json' }),
        resources: (auditListener) => resourceCatalog({ gatewayId: gw.config.gateway.id, postgres: gw.config.gateway.postgres, postgresListener: gw.gateway.address(), auditListener }),
      });
      await server.start();
      return server;
    };
    let audit = await serve(0);
    const port = audit.address().port;
    const address = `127.0.0.1:${port}`;
    return {
      gw,
      get audit() {
        return audit;
      },
      certs,
      address,
      entry: { address, caFile: certs.caCert, certFile: certs.collectorCert, keyFile: certs.collectorKey, serverName: null },
      async traffic(count, label = 'traffic') {
        const closedBefore = (await gw.records()).filter((r) => r.session?.outcome === 'SESSION_OUTCOME_CLOSED').length;
        const client = await nodeClient(gw.agent);
        try {
          for (let i = 0; i < count; i++) await client.query(`SELECT ${i} AS n, '${label}' AS label`);
        } finally {
          await client.end();
        }
        // The session's closing record is journaled after the client has gone.
        for (let i = 0; i < 500; i++) {
          if ((await gw.records()).filter((r) => r.session?.outcome === 'SESSION_OUTCOME_CLOSED').length > closedBefore) return;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        throw new Error('the gateway did not journal the end of the session');
      },
      async head() {
        let last = 0n;
        for await (const record of gw.journal.read(1n)) last = BigInt(record.seq);
        return last;
      },
      async restartAudit() {
        await audit.stop();
        audit = await serve(port);
      },
      async stop() {
        await audit.stop();
        await gw.stop();
        rmSync(certsDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await gw.stop();
    rmSync(certsDir, { recursive: true, force: true });
    throw err;
  }
}

/** Collects a subscription's records until `until` says stop, then cancels the call. */
export function collect(client: AuditClient, fromSeq: bigint, until: (records: JournalRecord__Output[]) => boolean): Promise<JournalRecord__Output[]> {
  return new Promise((resolve, reject) => {
    const records: JournalRecord__Output[] = [];
    const call = client.subscribe({ fromSeq: fromSeq.toString() });
    let done = false;
    call.on('data', (record: JournalRecord__Output) => {
      if (done) return;
      records.push(record);
      if (until(records)) {
        done = true;
        call.cancel();
        resolve(records);
      }
    });
    call.on('error', (err: grpc.ServiceError) => {
      if (done) return;
      done = true;
      reject(err);
    });
  });
}
