import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createAuditClient } from '../../../collector/gateway-feed/audit-client';
import { createDevCertificates } from '../../../gateway/audit/dev-certificates';
import { parseConfig } from '../../../platform/config';
import { loadGapwatchProto } from '../../../proto/load';
import type { AuditClient } from '../../../proto/generated/gapwatch/v1/Audit';
import type { JournalRecord__Output } from '../../../proto/generated/gapwatch/v1/JournalRecord';
import type { ResourcesResponse__Output } from '../../../proto/generated/gapwatch/v1/ResourcesResponse';
import { collect, startAuditGateway, type AuditGatewayUnderTest } from '../../support/audit-gateway';
import { requireRoot, runCli } from '../../support/host';

function listResources(client: AuditClient): Promise<ResourcesResponse__Output> {
  return new Promise((resolve, reject) => client.listResources({}, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res!))));
}

function waitFor(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (check()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

describe('gateway/audit: the Audit gRPC service', function () {
  this.timeout(90_000);
  let env: AuditGatewayUnderTest;
  let client: AuditClient;

  before(async () => {
    requireRoot();
    env = await startAuditGateway({ resource: { tags: ['production'] } });
    client = createAuditClient(env.entry);
    await env.traffic(3, 'before');
  });
  after(async () => {
    client?.close();
    await env?.stop();
  });

  it('streams the journal from the first record, then from the middle, exactly as the journal holds it', async () => {
    const journal = await env.gw.records();
    assert.ok(journal.length >= 6, `a session of 3 statements journals several records (got ${journal.length})`);
    const all = await collect(client, 0n, (records) => records.length === journal.length);
    assert.deepEqual(all.map((r) => r.seq), journal.map((r) => r.seq));
    assert.deepEqual(all.map((r) => r.hash.toString('hex')), journal.map((r) => r.hash.toString('hex')));
    assert.deepEqual(all.map((r) => r.body), journal.map((r) => r.body));
    const session = all.find((r) => r.body === 'session' && r.session!.outcome === 'SESSION_OUTCOME_CLOSED')!.session!;
    assert.equal(session.resource, 'orders');
    assert.equal(session.database, 'orders');
    assert.ok(BigInt(session.bytesFromClient) > 0n);

    const middle = BigInt(journal[Math.floor(journal.length / 2)]!.seq);
    const rest = await collect(client, middle, (records) => BigInt(records[records.length - 1]!.seq) === BigInt(journal[journal.length - 1]!.seq));
    assert.equal(rest[0]!.seq, middle.toString());
    assert.deepEqual(rest.map((r) => r.seq), journal.filter((r) => BigInt(r.seq) >= middle).map((r) => r.seq));
  });

  it('follows live appends after the historic records', async () => {
    const head = await env.head();
    const live = collect(client, 1n, (records) =>
      records.some((r) => BigInt(r.seq) > head && r.event?.statement?.text.includes("'live-follow'") === true),
    );
    await env.traffic(1, 'live-follow');
    const records = await live;
    const seqs = records.map((r) => BigInt(r.seq));
    assert.deepEqual(seqs, seqs.map((_, i) => BigInt(i + 1)), 'contiguous from 1 through the live records');
  });

  it('applies the subscribe filter by record body', async () => {
    const journal = await env.gw.records();
    const sessions = journal.filter((r) => r.body === 'session');
    const got = await new Promise<JournalRecord__Output[]>((resolve, reject) => {
      const out: JournalRecord__Output[] = [];
      const call = client.subscribe({ fromSeq: '1', filter: { bodies: ['session'] } });
      call.on('data', (r: JournalRecord__Output) => {
        out.push(r);
        if (out.length === sessions.length) {
          call.cancel();
          resolve(out);
        }
      });
      call.on('error', (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED ? undefined : reject(err)));
    });
    assert.deepEqual(got.map((r) => r.seq), sessions.map((r) => r.seq));
    const refused = client.subscribe({ fromSeq: '1', filter: { bodies: ['sessions'] } });
    const err = await new Promise<grpc.ServiceError>((resolve) => refused.on('error', resolve));
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.match(err.details, /unknown record bodies in filter: sessions/);
  });

  it('lists the protected resources with their upstream, tags and the gateway listeners', async () => {
    const answer = await listResources(client);
    assert.equal(answer.gatewayId, 'gw-test');
    assert.equal(answer.resources.length, 1);
    const resource = answer.resources[0]!;
    assert.equal(resource.name, 'orders');
    assert.equal(resource.protocol, 'PROTOCOL_POSTGRES');
    assert.deepEqual(resource.tags, ['production']);
    assert.deepEqual(resource.upstream.map((e) => e.inet), [{ ip: env.gw.pg.host, port: env.gw.pg.port }]);
    assert.deepEqual(resource.listener.map((e) => e.inet), [{ ip: '127.0.0.1', port: env.gw.port }]);
    assert.deepEqual(
      answer.listeners.map((l) => [l.role, l.endpoint!.inet!.port]),
      [
        ['postgres', env.gw.port],
        ['audit', env.audit.address().port],
      ],
    );
  });

  it('refuses subscribers without a client certificate of its CA', async () => {
    const Audit = loadGapwatchProto().gapwatch.v1.Audit;
    const refusedBy = async (credentials: grpc.ChannelCredentials): Promise<grpc.ServiceError> => {
      const c = new Audit(env.address, credentials);
      try {
        const call = c.subscribe({ fromSeq: '1' });
        let received = 0;
        call.on('data', () => received++);
        const err = await new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
        assert.equal(received, 0, 'no record reaches a refused subscriber');
        return err;
      } finally {
        c.close();
      }
    };
    const dir = mkdtempSync(join(tmpdir(), 'gapwatch-othercerts-'));
    try {
      const ca = await import('node:fs').then((fs) => fs.readFileSync(env.certs.caCert));
      // TLS with the right CA but no client certificate.
      assert.equal((await refusedBy(grpc.credentials.createSsl(ca))).code, grpc.status.UNAVAILABLE);
      // No TLS at all.
      assert.equal((await refusedBy(grpc.credentials.createInsecure())).code, grpc.status.UNAVAILABLE);
      // A client certificate signed by another CA.
      const other = createDevCertificates({ dir });
      const fs = await import('node:fs');
      const foreign = grpc.credentials.createSsl(ca, fs.readFileSync(other.collectorKey), fs.readFileSync(other.collectorCert));
      assert.equal((await refusedBy(foreign)).code, grpc.status.UNAVAILABLE);
      // The legitimate client still works.
      assert.equal((await listResources(client)).gatewayId, 'gw-test');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('does not buffer for a subscriber that stops reading (flow control), and delivers everything once it reads again', async () => {
    const before = await env.head();
    const count = 3000;
    const text = 'x'.repeat(16 * 1024);
    await Promise.all(
      Array.from({ length: count }, (_, i) =>
        env.gw.journal.append({ event: { sessionId: 'flow-control', eventSeq: String(i + 1), timeUnixNano: '1', statement: { text } } }),
      ),
    );
    const statsBefore = env.audit.stats();
    const reader = createAuditClient(env.entry);
    const call = reader.subscribe({ fromSeq: (before + 1n).toString() });
    let failure: Error | null = null;
    call.on('error', (err: grpc.ServiceError) => {
      if (err.code !== grpc.status.CANCELLED) failure = err;
    });
    let received = 0;
    let appended = 0;
    const seen: bigint[] = [];
    call.on('data', (r: JournalRecord__Output) => {
      received++;
      if (r.event?.sessionId === 'flow-control') appended++;
      seen.push(BigInt(r.seq));
      if (received === 1) call.pause();
    });
    await waitFor(() => received >= 1, 'the first record');
    // Wait until the server has stopped pulling records from the journal for this subscriber.
    let last = -1;
    let stableSince = Date.now();
    await waitFor(() => {
      const read = env.audit.stats().recordsRead;
      if (read !== last) {
        last = read;
        stableSince = Date.now();
      }
      return Date.now() - stableSince > 1000;
    }, 'the server to stop reading', 30_000);
    const readForThisCall = env.audit.stats().recordsRead - statsBefore.recordsRead;
    // 3000 records of 16 KiB are 48 MiB; what the transport holds (HTTP/2 windows, socket buffers,
    // the call's write buffer) is a small, fixed fraction of that.
    assert.ok(readForThisCall < count / 4, `the server pulled ${readForThisCall} of ${count} records for a subscriber that read 1`);
    call.resume();
    // The journal interleaves its own signed checkpoints with the appended records.
    await waitFor(() => appended === count || failure !== null, `all ${count} records`, 60_000);
    assert.equal(failure, null);
    call.cancel();
    reader.close();
    assert.deepEqual(seen, Array.from({ length: seen.length }, (_, i) => before + 1n + BigInt(i)));
  });
});

describe('gateway.audit configuration and gapwatch certs init', () => {
  it('keeps the TLS files together and off by default', () => {
    const config = parseConfig('gateway:\n  audit:\n    listen: { port: 0 }\n');
    assert.deepEqual(config.gateway.audit.tls, { caFile: null, certFile: null, keyFile: null });
    assert.throws(() => parseConfig('gateway:\n  audit:\n    tls: { certFile: a.pem, keyFile: a.key }\n'), /caFile, tls.certFile and tls.keyFile go together/);
    assert.throws(() => parseConfig('collector:\n  gateways:\n    - { address: "gw:7443" }\n'), /collector.gateways.0.caFile/);
    const feed = parseConfig('collector:\n  gateways:\n    - { address: "[::1]:7443", caFile: ca, certFile: c, keyFile: k }\n');
    assert.equal(feed.collector.gateways[0]!.address, '[::1]:7443');
  });

  it('creates a CA, a gateway and a collector certificate, and refuses to overwrite them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gapwatch-certs-cli-'));
    try {
      const first = await runCli(['certs', 'init', '--dir', join(dir, 'certs'), '--host', 'gw.internal']);
      assert.equal(first.code, 0, first.stderr);
      for (const name of ['ca.crt', 'ca.key', 'gateway.crt', 'gateway.key', 'collector.crt', 'collector.key', 'watcher.crt', 'watcher.key']) assert.ok(existsSync(join(dir, 'certs', name)), name);
      assert.match(first.stdout, /caFile: .*ca\.crt/);
      const again = await runCli(['certs', 'init', '--dir', join(dir, 'certs')]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /already exist.*--force/s);
      assert.match(again.stderr, /GW_ERR_DEV_CERTS/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
