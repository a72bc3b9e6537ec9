import assert from 'node:assert/strict';
import { serialize } from 'pg-protocol';
import type { BackendMessage } from 'pg-protocol/dist/messages';
import type { JournalRecord__Output } from '../../../proto/generated/gapwatch/v1/JournalRecord';
import { startGateway, type GatewayUnderTest } from '../../support/pg-gateway';
import { seededRandom } from '../../support/seeded-random';
import { rawSession, type Target } from './clients';

/**
 * The two data paths against each other: the same seeded pipelines of simple and extended protocol
 * messages — writes allowed and denied by policy, search_path changes between and inside batches,
 * SQL and protocol prepared statements, transaction blocks, parse errors — sent by an agent whose
 * sessions run on the native loop and by one whose sessions stay in JavaScript (a mask rule that
 * matches nothing keeps them there), from the same database state. Every answer (message, SQLSTATE,
 * row values), the tables afterwards and the statements journaled (text, outcome, rows) must be the
 * same: the native loop's kept decisions, literal shapes and batch splitting may change how fast an
 * answer comes, never what it is or what is on record. Some extended batches send their Sync later,
 * after a pause, some with a statement that fails at Execute before it (the server then skips the
 * rest up to that Sync).
 */

type Batch = Buffer[];

/**
 * In a batch: the agent pauses here (a separate write 10 ms later), as a pipelining client that sends
 * the Sync after it saw the first answers does; the server may have failed a message before it.
 */
const PAUSE = Buffer.alloc(0);

/** In a batch: what follows goes in a separate write at once (the agent does not wait for anything). */
const NEXT = Buffer.alloc(0);

const TEXTS = [
  'INSERT INTO notes VALUES (#)',
  'SELECT count(*) FROM notes WHERE id < #',
  'SELECT count(*), max(id) FROM notes',
  'INSERT INTO vault.notes VALUES (#)',
  'SELECT count(*) FROM vault.notes',
  'DELETE FROM guarded WHERE id = #',
  'SELECT count(*) FROM guarded',
  'SET search_path = vault',
  'SET search_path = public',
  'SET search_path = vault, public',
  'RESET search_path',
  'SELECT # ; SET search_path = vault',
  'SET search_path = public; INSERT INTO notes VALUES (#)',
  'PREPARE p1 AS INSERT INTO notes VALUES (#)',
  'PREPARE p2 AS SELECT count(*) FROM notes',
  'EXECUTE p1',
  'EXECUTE p2',
  // The extended batches' statement names: a Close 'S' makes the gateway forget them.
  'EXECUTE s1',
  'EXECUTE s2(#)',
  'DEALLOCATE p1',
  'DEALLOCATE ALL',
  'BEGIN',
  'COMMIT',
  'ROLLBACK',
  'SELEC broken #',
  '',
];

const EXTENDED_TEXTS = [
  'INSERT INTO notes VALUES ($1::int)',
  'SELECT count(*) FROM notes WHERE id < $1::int',
  'INSERT INTO vault.notes VALUES ($1::int)',
  'DELETE FROM guarded WHERE id = $1::int',
  'SET search_path = vault',
  'SET search_path = public',
  // Fails at Execute (division by zero): the server skips the rest of the batch up to its Sync.
  'SELECT 100 / ($1::int - $1::int)',
];

function script(seed: number, batches: number): Batch[] {
  const next = seededRandom(seed);
  const int = (n: number): number => Math.floor(next() * n);
  const out: Batch[] = [];
  for (let b = 0; b < batches; b++) {
    const batch: Batch = [];
    let open = false;  // an extended batch whose Sync is still to come
    for (let u = 1 + int(4); u > 0; u--) {
      const draw = next();
      if (draw < 0.6 && !open) {
        batch.push(serialize.query(TEXTS[int(TEXTS.length)]!.replaceAll('#', String(1 + int(50)))));
      } else if (open && draw < 0.15) {
        // A simple Query inside the open batch: skipped by a server that failed the batch before it
        // (no answer at all), so how many ReadyForQuery the batch ends with is not known in advance.
        batch.push(serialize.query(TEXTS[int(TEXTS.length)]!.replaceAll('#', String(1 + int(50)))));
        UNCOUNTED.add(batch);
      } else {
        const name = ['', '', 's1', 's2'][int(4)]!;
        const text = EXTENDED_TEXTS[int(EXTENDED_TEXTS.length)]!;
        const values = text.includes('$1') ? [String(1 + int(50))] : [];
        batch.push(serialize.parse({ name, text }));
        if (next() < 0.8) batch.push(serialize.bind({ statement: name, values }), serialize.execute({}));
        if (name !== '' && next() < 0.3) batch.push(serialize.close({ type: 'S', name }));
        // Now and then the Sync comes later, after a pause: with the rest of the batch, or alone.
        open = next() < 0.2;
        if (open) batch.push(serialize.flush(), PAUSE);
        else batch.push(serialize.sync());
      }
    }
    if (open) batch.push(serialize.sync());
    out.push(batch);
  }
  return out;
}

/** Batches that end with fewer ReadyForQuery than they have Queries and Syncs (the server skipped a Query). */
const OWED = new WeakMap<Batch, number>();

/**
 * Batches whose ReadyForQuery count depends on the server (a Query it may skip): the agent sends a
 * marker after them — a Describe of a portal that does not exist, and a Sync; its error (34000) comes
 * in any session state — and takes everything up to the marker's answer as the batch's.
 */
const UNCOUNTED = new WeakSet<Batch>();
const MARKER = [serialize.describe({ type: 'P', name: 'gapwatch_parity_marker' }), serialize.sync()];
const isMarkerError = (m: BackendMessage): boolean => m.name === 'error' && (m as unknown as { code?: string }).code === '34000';

/** How many ReadyForQuery a batch ends with: one per Query and per Sync. */
function answersOwed(batch: Batch): number {
  return OWED.get(batch) ?? batch.filter((m) => m[0] === 0x51 /* Q */ || m[0] === 0x53 /* S */).length;
}

/** What the agent saw, in a form both paths must match exactly. */
function seen(messages: BackendMessage[]): string[] {
  return messages
    .filter((m) => m.name !== 'notice')
    .map((m) => {
      const any = m as unknown as { code?: string; fields?: unknown[]; text?: string; status?: string };
      if (m.name === 'error') return `error ${any.code}`;
      if (m.name === 'dataRow') return `row ${JSON.stringify(any.fields)}`;
      if (m.name === 'commandComplete') return `complete ${any.text}`;
      if (m.name === 'readyForQuery') return `ready ${any.status}`;
      return m.name;
    });
}

/**
 * What the journal says of one session's statements: text, outcome and what the client got (the two
 * paths must journal the same outcomes for the same answers; durations aside). Sorted: a refusal is
 * journaled when the gateway refuses it, which can come before or after the outcome of a statement
 * forwarded ahead of it in the same pipeline; an outcome matched to the wrong statement still shows.
 */
function journaled(records: JournalRecord__Output[], sessionId: string): string[] {
  return records.flatMap((r) => {
    const statement = r.event?.sessionId === sessionId ? r.event.statement : null;
    if (!statement) return [];
    return [`${statement.via} ${JSON.stringify(statement.text)} -> ${statement.errorCode || statement.commandTag} rows ${statement.result?.rows ?? statement.rows}`];
  }).sort();
}

describe('gateway/postgres data paths agree: seeded pipelines through the native loop and through JavaScript (real PostgreSQL 15)', function () {
  this.timeout(120_000);
  let gw: GatewayUnderTest;
  let nativeAgent: Target;
  let javascriptAgent: Target;

  before(async () => {
    gw = await startGateway({
      postgres: { dataPath: 'auto' },
      policy: {
        builtinRules: false,
        default: 'allow',
        // Nobody approves: a held statement is refused when its review times out.
        reviewTimeoutSeconds: 1,
        rules: [
          { name: 'reviewed-writes', relations: ['reviewed'], classes: ['write'], action: 'review', reason: 'writes to reviewed need a human' },
          { name: 'vault-read-only', relations: ['vault.*'], classes: ['write'], action: 'deny', reason: 'the vault schema is read-only for agents' },
          { name: 'guarded-no-delete', relations: ['guarded', '*.guarded'], classes: ['write'], action: 'deny', reason: 'guarded rows stay' },
          // Matches no column of these tables: it only keeps this identity's sessions on the JavaScript path.
          { name: 'keep-in-javascript', logins: ['javascript-agent'], relations: ['no_such_table'], action: 'mask', mask: { columns: ['nothing'] } },
        ],
      },
    });
    nativeAgent = gw.agent;
    javascriptAgent = { ...nativeAgent, user: 'javascript-agent', password: (await gw.identities.create('javascript-agent')).token };
    await gw.pg.admin(
      ['CREATE SCHEMA vault AUTHORIZATION gw_upstream', 'SET ROLE gw_upstream', 'CREATE TABLE notes (id int)', 'CREATE TABLE vault.notes (id int)', 'CREATE TABLE guarded (id int)', 'CREATE TABLE reviewed (id int)'].join(';\n'),
      gw.pg.database,
    );
  });

  after(async () => {
    await gw?.stop();
  });

  const reset = (): Promise<string> =>
    gw.pg.admin("SET ROLE gw_upstream; TRUNCATE notes, vault.notes, guarded; INSERT INTO guarded SELECT generate_series(1, 50); SELECT 'reset'", gw.pg.database);
  const tables = (): Promise<string> =>
    gw.pg.admin(
      "SELECT 'notes:' || coalesce((SELECT string_agg(id::text, ',' ORDER BY id) FROM notes), '') || ';vault:' || coalesce((SELECT string_agg(id::text, ',' ORDER BY id) FROM vault.notes), '') || ';guarded:' || (SELECT count(*) FROM guarded)",
      gw.pg.database,
    );

  /** The agent's answers, and the session's statements as journaled once it has ended. */
  async function run(agent: Target, batches: Batch[]): Promise<{ answers: string[][]; journal: string[] }> {
    const before = new Set((await gw.records()).flatMap((r) => (r.session ? [r.session.sessionId] : [])));
    const conn = await rawSession(agent);
    const answers: string[][] = [];
    try {
      for (const batch of batches) {
        const parts: Buffer[][] = [[]];
        const pauses: boolean[] = [];
        for (const m of batch) {
          if (m === PAUSE || m === NEXT) {
            parts.push([]);
            pauses.push(m === PAUSE);
          } else parts.at(-1)!.push(m);
        }
        for (const [i, part] of parts.slice(0, -1).entries()) {
          conn.send(part);
          if (pauses[i]) await new Promise((resolve) => setTimeout(resolve, 10));
        }
        // A missing ReadyForQuery would leave the test waiting: it fails here, saying where.
        const ready = (m: BackendMessage): boolean => m.name === 'readyForQuery';
        const answered = (messages: Buffer[], done = ready): Promise<BackendMessage[]> => {
          let timer: NodeJS.Timeout | undefined;
          const late = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${agent.user}: no ${done === ready ? 'ReadyForQuery' : 'marker'} within 20 s for batch ${answers.length} (${batch.map((m) => (m === PAUSE ? '|' : m === NEXT ? '/' : String.fromCharCode(m[0]!))).join('')}); answers so far: ${JSON.stringify(answers.at(-1))}`)), 20_000);
          });
          return Promise.race([conn.exchangeUntil(messages, done), late]).finally(() => clearTimeout(timer));
        };
        if (UNCOUNTED.has(batch)) {
          const messages = await answered([...parts.at(-1)!, ...MARKER], isMarkerError);
          messages.push(...(await answered([])));
          answers.push(seen(messages));
          continue;
        }
        const messages = await answered(parts.at(-1)!);
        for (let owed = answersOwed(batch) - 1; owed > 0; owed--) messages.push(...(await answered([])));
        answers.push(seen(messages));
      }
    } finally {
      conn.close();
    }
    for (const deadline = Date.now() + 20_000; ; ) {
      const records = await gw.records();
      const ended = records.find((r) => r.session && !before.has(r.session.sessionId) && r.session.endUnixNano !== '0');
      if (ended?.session) return { answers, journal: journaled(records, ended.session.sessionId) };
      if (Date.now() > deadline) throw new Error('the session did not end in the journal within 20 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it("named statements: a Close 'S' is forgotten in order with the statements around it (SQL EXECUTE of the closed name is refused, of a name prepared again in the same batch runs the new statement); a named Parse of a text decided before is still learned; one withheld after a refused Parse (or one held for a review that is then refused) is not", async () => {
    const batches: Batch[] = [
      [serialize.parse({ name: 's1', text: 'SELECT 1 AS one' }), serialize.sync()],
      [serialize.query('EXECUTE s1')],
      [serialize.close({ type: 'S', name: 's1' }), serialize.sync()],
      [serialize.query('EXECUTE s1')],
      // One write: the Close, then the name prepared again, then (asked about after both) EXECUTE.
      [serialize.close({ type: 'S', name: 's1' }), serialize.parse({ name: 's1', text: 'SELECT 2 AS two' }), serialize.sync(), serialize.query('EXECUTE s1')],
      [serialize.query('EXECUTE s1')],
      // The text was decided for the unnamed statement first (a decision the native loop keeps).
      [serialize.parse({ text: 'SELECT 3 AS three' }), serialize.bind({}), serialize.execute({}), serialize.sync()],
      [serialize.parse({ name: 's3', text: 'SELECT 3 AS three' }), serialize.sync(), serialize.query('EXECUTE s3')],
      // A text not decided before: JavaScript is asked while s3 is known, and the Close after it in
      // the same write must not let that answer be reused for the same text after the Close.
      [serialize.query('EXECUTE  s3'), serialize.close({ type: 'S', name: 's3' }), serialize.sync()],
      [serialize.query('EXECUTE  s3')],
      // After a refused Parse the rest of the batch up to its Sync is withheld unread: s4 is never prepared.
      [serialize.parse({ text: 'INSERT INTO vault.notes VALUES (1)' }), serialize.parse({ name: 's4', text: 'SELECT 4' }), serialize.close({ type: 'S', name: 's3' }), serialize.sync()],
      [serialize.query('EXECUTE s4')],
      // Behind a Parse held for review (refused when the review times out) the batch is skipped to its
      // Sync: s5 is never prepared, though the Parse of it arrived before the review ended.
      [serialize.parse({ text: 'INSERT INTO reviewed VALUES (1)' }), serialize.bind({}), serialize.execute({}), serialize.parse({ name: 's5', text: 'SELECT 5' }), serialize.sync()],
      [serialize.query('EXECUTE s5')],
    ];
    const native = await run(nativeAgent, batches);
    const javascript = await run(javascriptAgent, batches);
    assert.deepEqual(native.answers, javascript.answers, 'native (actual) and JavaScript (expected) answers differ');
    assert.deepEqual(native.journal, javascript.journal);
    assert.deepEqual(native.answers[1], ['rowDescription', 'row ["1"]', 'complete SELECT 1', 'ready I']);
    // Refused by policy (42501: the gateway no longer knows what s1 runs), not by the server (26000).
    assert.deepEqual(native.answers[3], ['error 42501', 'ready I']);
    assert.deepEqual(native.answers[4], ['closeComplete', 'parseComplete', 'ready I', 'rowDescription', 'row ["2"]', 'complete SELECT 1', 'ready I']);
    assert.deepEqual(native.answers[5], ['rowDescription', 'row ["2"]', 'complete SELECT 1', 'ready I']);
    assert.deepEqual(native.answers[7], ['parseComplete', 'ready I', 'rowDescription', 'row ["3"]', 'complete SELECT 1', 'ready I']);
    assert.deepEqual(native.answers[8], ['rowDescription', 'row ["3"]', 'complete SELECT 1', 'ready I', 'closeComplete', 'ready I']);
    assert.deepEqual(native.answers[9], ['error 42501', 'ready I']);
    assert.deepEqual(native.answers[10], ['error 42501', 'ready I']);
    assert.deepEqual(native.answers[11], ['error 42501', 'ready I']);
    assert.deepEqual(native.answers[12], ['error 42501', 'ready I']);
    assert.deepEqual(native.answers[13], ['error 42501', 'ready I']);
  });

  it('a refusal that comes to the front of the answers owed while a later write waits for its fdatasync is answered in its place, and the server error behind it is not taken for it', async () => {
    const round: Batch = [
      serialize.query('SELECT count(*) FROM guarded'),
      // Refused: the gateway answers it itself once the count is answered; its record waits for an fdatasync.
      serialize.query('DELETE FROM guarded WHERE id = 1'),
      // Fails at Parse: the server skips to the Sync, which comes in the next write.
      serialize.parse({ text: 'SELECT * FROM no_such_table' }),
      serialize.flush(),
      // At once: the gateway reads it while the first write still waits for its fdatasync, and the
      // INSERT makes this one wait for another — meanwhile the server answers the first write.
      NEXT,
      serialize.sync(),
      serialize.query('INSERT INTO notes VALUES (1)'),
    ];
    // The timing the fault needed came in 1 round out of 2 to 20 in a local run; 30 rounds per session.
    const batches = Array.from({ length: 30 }, () => round);
    await reset();
    const native = await run(nativeAgent, batches);
    await reset();
    const javascript = await run(javascriptAgent, batches);
    assert.deepEqual(native.answers, javascript.answers, 'native (actual) and JavaScript (expected) answers differ');
    assert.deepEqual(native.journal, javascript.journal);
    for (const answers of native.answers) {
      assert.deepEqual(answers, ['rowDescription', 'row ["50"]', 'complete SELECT 1', 'ready I', 'error 42501', 'ready I', 'error 42P01', 'ready I', 'complete INSERT 0 1', 'ready I']);
    }
  });

  it('a refusal (or a review notice) behind extended messages not synced yet comes after their answers: the gateway has the server flush them', async () => {
    const refused = serialize.query('DELETE FROM guarded WHERE id = 1');
    const batches: Batch[] = [
      // No Flush, no Sync: the server keeps its answers until asked, and the agent waits for the refusal first.
      [serialize.parse({ text: 'SELECT 1' }), serialize.bind({}), serialize.execute({}), refused],
      [serialize.sync()],
      [serialize.parse({ text: 'SELECT 2' }), serialize.bind({}), serialize.execute({}), serialize.flush(), refused, serialize.sync()],
      // Held for review (nobody approves: refused after a second); its notice too comes after the answers.
      [serialize.parse({ text: 'SELECT 3' }), serialize.bind({}), serialize.execute({}), serialize.query('INSERT INTO reviewed VALUES (1)')],
      [serialize.sync()],
    ];
    const native = await run(nativeAgent, batches);
    const javascript = await run(javascriptAgent, batches);
    assert.deepEqual(native.answers, javascript.answers, 'native (actual) and JavaScript (expected) answers differ');
    assert.deepEqual(native.journal, javascript.journal);
    const answered = (n: string): string[] => ['parseComplete', 'bindComplete', `row ["${n}"]`, 'complete SELECT 1'];
    assert.deepEqual(native.answers, [
      [...answered('1'), 'error 42501', 'ready I'],
      ['ready I'],
      [...answered('2'), 'error 42501', 'ready I', 'ready I'],
      [...answered('3'), 'error 42501', 'ready I'],
      ['ready I'],
    ]);
  });

  it('a prepared SET search_path run later (SQL EXECUTE or protocol Execute) after a SET the policy follows lets no write reach the read-only schema', async () => {
    const batches: Batch[] = [
      [serialize.parse({ name: 's1', text: 'SET search_path = vault' }), serialize.sync()],
      [serialize.query('SET search_path = public')],
      [serialize.query('EXECUTE s1')],
      [serialize.query('INSERT INTO notes VALUES (1)')],
      [serialize.query('SET search_path = public')],
      [serialize.bind({ statement: 's1' }), serialize.execute({}), serialize.sync()],
      [serialize.query('INSERT INTO notes VALUES (2)')],
      // A Close the policy cannot be sure of (the server skips it after an error before it in its batch).
      [serialize.close({ type: 'S', name: 's1' }), serialize.sync()],
      [serialize.query('SET search_path = public')],
      [serialize.query('INSERT INTO notes VALUES (3)')],
      // A lone DEALLOCATE in a simple Query surely runs.
      [serialize.query('DEALLOCATE ALL')],
      [serialize.query('SET search_path = public')],
      [serialize.query('INSERT INTO notes VALUES (4)')],
    ];
    await reset();
    const native = await run(nativeAgent, batches);
    const nativeTables = await tables();
    await reset();
    const javascript = await run(javascriptAgent, batches);
    assert.deepEqual(native.answers, javascript.answers, 'native (actual) and JavaScript (expected) answers differ');
    assert.deepEqual(native.journal, javascript.journal);
    assert.equal(nativeTables, await tables());
    assert.deepEqual(native.answers[3], ['error 42501', 'ready I']);
    assert.deepEqual(native.answers[6], ['error 42501', 'ready I']);
    assert.deepEqual(native.answers[9], ['error 42501', 'ready I']);
    assert.deepEqual(native.answers[12], ['complete INSERT 0 1', 'ready I']);
    assert.equal(nativeTables, 'notes:4;vault:;guarded:50');
  });

  it('a simple Query sent inside an extended batch the server failed is skipped with the rest of it, and owes no answer', async () => {
    // The server fails the Parse, skips the Bind, the Execute and the Query, and answers the Sync.
    const skipped: Batch = [serialize.parse({ text: 'SELECT * FROM no_such_table' }), serialize.bind({}), serialize.execute({}), serialize.query('SELECT 1'), serialize.sync()];
    OWED.set(skipped, 1);
    const batches: Batch[] = [skipped, [serialize.query('SELECT 2')], [serialize.parse({ text: 'SELECT 3' }), serialize.bind({}), serialize.execute({}), serialize.sync()]];
    const native = await run(nativeAgent, batches);
    const javascript = await run(javascriptAgent, batches);
    assert.deepEqual(native.answers, javascript.answers, 'native (actual) and JavaScript (expected) answers differ');
    assert.deepEqual(native.journal, javascript.journal);
    assert.deepEqual(native.answers, [
      ['error 42P01', 'ready I'],
      ['rowDescription', 'row ["2"]', 'complete SELECT 1', 'ready I'],
      ['parseComplete', 'bindComplete', 'row ["3"]', 'complete SELECT 1', 'ready I'],
    ]);
    assert.ok(native.journal.includes('query "SELECT 2" -> SELECT 1 rows 1'), native.journal.join('\n'));
  });

  for (const seed of (process.env.PARITY_SEEDS ?? "11,23,37,41,53,67,79,83,97,101,113,127,202,204").split(",").map(Number)) {
    it(`seed ${seed}: the same answers and the same tables`, async () => {
      const batches = script(seed, 40);
      const nativeBefore = gw.gateway.nativeSessionsServed;
      await reset();
      const native = await run(nativeAgent, batches);
      const nativeTables = await tables();
      await reset();
      const javascript = await run(javascriptAgent, batches);
      const javascriptTables = await tables();
      assert.equal(gw.gateway.nativeSessionsServed, nativeBefore + 1, 'one session on the native loop, the other in JavaScript');
      for (let i = 0; i < batches.length; i++) {
        assert.deepEqual(native.answers[i], javascript.answers[i], `batch ${i} of seed ${seed}: native (actual) and JavaScript (expected) answers differ`);
      }
      assert.deepEqual(native.journal, javascript.journal, `seed ${seed}: the journaled statements differ (native actual, JavaScript expected)`);
      assert.ok(native.journal.length > 0);
      assert.equal(nativeTables, javascriptTables);
      assert.match(nativeTables, /;vault:;/, `nothing was written to vault.notes: ${nativeTables}`);
      assert.match(nativeTables, /;guarded:50$/, `no guarded row was deleted: ${nativeTables}`);
    });
  }
});
