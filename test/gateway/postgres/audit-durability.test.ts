import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { Client } from 'pg';
import type { JournalRecord__Output } from '../../../proto/generated/gapwatch/v1/JournalRecord';
import { startGateway, type GatewayUnderTest } from '../../support/pg-gateway';
import { serialize } from 'pg-protocol';
import { nodeClient, rawSession, type Target } from './clients';

/**
 * gateway.postgres.audit.durability: whichever mode, an agent never sees the answer to a request
 * whose journal record has not reached its level yet — durable (fsync'd) with readDurability
 * `durable`, at least written for these plain reads with the default `written`. Observed from the
 * agent's side: the journal's durable (or written) head when the first bytes of each answer arrive
 * must already include the request's PgRequest record.
 */

/** The first byte of an answer arrives in the socket's first 'data' event after the request went out. */
function watchFirstAnswer(client: Client, head: () => bigint): { reset(): void; seen(): bigint | null } {
  const stream = (client as unknown as { connection: { stream: Socket } }).connection.stream;
  let seen: bigint | null = null;
  stream.prependListener('data', () => {
    if (seen === null) seen = head();
  });
  return {
    reset: () => (seen = null),
    seen: () => seen,
  };
}

/** seq of the PgRequest record that carried `needle` (a Query's or Parse's text). */
function requestSeq(records: JournalRecord__Output[], needle: string): bigint {
  const record = records.find((r) => r.event?.pgRequest?.messages.some((m) => m.text.includes(needle)));
  assert.ok(record, `no PgRequest record holds ${needle}`);
  return BigInt(record.seq);
}

const MODES = [
  { durability: 'before-reply', readDurability: 'written' },
  { durability: 'before-reply', readDurability: 'durable' },
  { durability: 'before-forward', readDurability: 'written' },
  { durability: 'before-forward', readDurability: 'durable' },
] as const;

for (const { durability, readDurability } of MODES)
for (const dataPath of ['auto', 'node'] as const) {
  describe(`gateway/postgres audit durability ${durability}, reads ${readDurability} — ${dataPath} data path (real PostgreSQL 15)`, function () {
    this.timeout(120_000);
    let gw: GatewayUnderTest;
    let target: Target;

    before(async () => {
      gw = await startGateway({ postgres: { audit: { durability, readDurability }, dataPath }, policy: { builtinRules: false, default: 'allow' } });
      target = gw.agent;
    });

    after(async () => {
      await gw?.stop();
    });

    it(`every answer reaches the agent only after its request record is ${readDurability} (simple and extended protocol, concurrent sessions)`, async () => {
      const head = (): bigint => (readDurability === 'durable' ? gw.journal.head().seq : gw.journal.writtenHead().seq);
      const perClient = 40;
      const seenAt = new Map<string, bigint>();
      const session = async (c: number): Promise<void> => {
        const client = await nodeClient(target);
        try {
          const watch = watchFirstAnswer(client, head);
          for (let i = 0; i < perClient; i++) {
            const marker = `probe_${c}_${i}`;
            watch.reset();
            // Alternate the simple protocol (no parameters) and the extended one (Parse/Bind/Execute/Sync).
            const result = i % 2 === 0 ? await client.query(`SELECT ${i} AS ${marker}`) : await client.query(`SELECT $1::int AS ${marker}`, [i]);
            assert.equal(Number(result.rows[0][marker]), i);
            const seen = watch.seen();
            assert.ok(seen !== null, `no bytes arrived for ${marker}`);
            seenAt.set(marker, seen);
          }
        } finally {
          await client.end();
        }
      };
      await Promise.all([0, 1, 2].map(session));
      assert.equal(seenAt.size, 3 * perClient);
      // Result records are appended as answers pass, so the last ones may still be on their way to disk.
      let records: JournalRecord__Output[] = [];
      for (let tries = 0; tries < 100; tries++) {
        records = await gw.records();
        if (records.filter((r) => r.event?.statement?.text.includes('probe_')).length >= 3 * perClient) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const [marker, seen] of seenAt) {
        const seq = requestSeq(records, marker);
        assert.ok(seq <= seen, `${marker}: request record seq ${seq} was not ${readDurability} (head ${seen}) when its answer arrived`);
      }
      // Every statement still has its result record.
      const statements = records.flatMap((r) => (r.event?.statement ? [r.event.statement] : []));
      for (const marker of seenAt.keys()) {
        assert.ok(statements.some((s) => s.text.includes(marker) && s.commandTag === 'SELECT 1' && s.rows === '1'), `no Statement record for ${marker}`);
      }
      if (dataPath === 'auto') assert.ok(gw.gateway.nativeSessionsServed >= 3, `sessions on the native loop: ${gw.gateway.nativeSessionsServed}`);
    });

    if (durability === 'before-reply') {
      it('an autocommit write is answered only once its request record is durable, and a Terminate sent with it waits for that answer', async () => {
        await gw.pg.admin(`CREATE TABLE IF NOT EXISTS reply_probe (n int); GRANT ALL ON reply_probe TO ${gw.pg.user}`, gw.pg.database);
        const client = await nodeClient(target);
        try {
          const watch = watchFirstAnswer(client, () => gw.journal.head().seq);
          for (let i = 0; i < 20; i++) {
            watch.reset();
            const result = await client.query(`INSERT INTO reply_probe VALUES (${1000 + i})`);
            assert.equal(result.rowCount, 1);
            const seen = watch.seen();
            assert.ok(seen !== null);
            const seq = requestSeq(await gw.records(), `VALUES (${1000 + i})`);
            assert.ok(seq <= seen, `INSERT ${i}: request record seq ${seq} was not durable (head ${seen}) when its answer arrived`);
          }
        } finally {
          await client.end();
        }
        // A write and Terminate in one packet: the answer (held for the fdatasync) still reaches the agent.
        const raw = await rawSession(target);
        const replies = await raw.sendUntilClose([serialize.query('INSERT INTO reply_probe VALUES (2000)'), serialize.end()]);
        assert.deepEqual(
          replies.map((m) => (m.name === 'commandComplete' ? `${m.name} ${(m as unknown as { text: string }).text}` : m.name)),
          ['commandComplete INSERT 0 1', 'readyForQuery'],
        );
        assert.equal((await gw.pg.admin("SELECT count(*) FROM reply_probe WHERE n >= 1000", gw.pg.database)).trim(), "21");
      });
    }
  });
}
