import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serialize } from 'pg-protocol';
import type { BackendMessage } from 'pg-protocol/dist/messages';
import { Parser } from 'pg-protocol/dist/parser';
import type { PostgresResourceConfig } from '../../../platform/config';
import { CredentialUnavailableError, UpstreamConnectError } from '../../../gateway/postgres/errors';
import { connectUpstream, parseTextArray, type UpstreamSession } from '../../../gateway/postgres/upstream-connect';
import { selfSignedCertificate, startPostgres, type PostgresServer } from '../../support/postgres';

/** Runs one simple query on a logged-in upstream session and returns the first column of each row. */
async function query(session: UpstreamSession, sql: string): Promise<string[]> {
  const parser = new Parser();
  const rows: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void =>
      parser.parse(chunk, (msg: BackendMessage) => {
        if (msg.name === 'dataRow') rows.push((msg as unknown as { fields: string[] }).fields[0]!);
        if (msg.name === 'error') reject(msg);
        if (msg.name === 'readyForQuery') {
          session.socket.removeListener('data', onData);
          resolve();
        }
      });
    session.socket.on('data', onData);
    session.socket.write(serialize.query(sql));
  });
  return rows;
}

describe('gateway/postgres upstream login (credential injection)', function () {
  this.timeout(60_000);
  let pg: PostgresServer;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gapwatch-upstream-'));
    pg = await startPostgres({ tls: selfSignedCertificate(dir) });
  });
  after(async () => {
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const resource = (overrides: Partial<PostgresResourceConfig['upstream']>): PostgresResourceConfig => ({
    name: 'orders',
    databases: [],
    tags: [],
    upstream: {
      host: pg.host,
      port: pg.port,
      socket: null,
      database: pg.database,
      user: pg.user,
      password: { value: pg.password },
      tls: 'disable',
      ca: null,
      ...overrides,
    },
  });

  it('logs in with SCRAM-SHA-256, passes client parameters on and reports the server key', async () => {
    const session = await connectUpstream(resource({}), new Map([['application_name', 'gw-test']]));
    try {
      assert.deepEqual(await query(session, 'SELECT current_user'), [pg.user]);
      assert.deepEqual(await query(session, "SELECT current_setting('application_name')"), ['gw-test']);
      assert.deepEqual(await query(session, 'SELECT pg_backend_pid()::text'), [String(session.processId)]);
      assert.ok(session.parameters.some(([name]) => name === 'server_version'));
      assert.equal(session.localAddress, '127.0.0.1');
      assert.ok(session.localPort > 0);
      // "$user", public: no schema is named after the user, so public alone.
      assert.deepEqual(session.searchPath, ['public']);
      assert.equal(session.currentUser, pg.user);
    } finally {
      session.socket.destroy();
    }
  });

  it("reports the search_path the server resolves names by after login (the agent's startup options included)", async () => {
    const session = await connectUpstream(resource({}), new Map([['options', '-c search_path=pg_catalog,"MySchema",public']]));
    try {
      // current_schemas(false) leaves out schemas that do not exist ("MySchema"); pg_catalog is there when named.
      assert.deepEqual(session.searchPath, ['pg_catalog', 'public']);
      assert.deepEqual(await query(session, 'SHOW search_path'), ['pg_catalog,"MySchema",public']);
    } finally {
      session.socket.destroy();
    }
    assert.deepEqual(parseTextArray('{public}'), ['public']);
    assert.deepEqual(parseTextArray('{app,public}'), ['app', 'public']);
    assert.deepEqual(parseTextArray('{"My Schema","a,b","q\\"x",plain}'), ['My Schema', 'a,b', 'q"x', 'plain']);
    assert.deepEqual(parseTextArray('{}'), []);
    for (const bad of ['public', '{a,NULL}', '{"open}', '{a,,b}x', '{{a}}']) assert.equal(parseTextArray(bad), null, bad);
  });

  it('logs in with md5 and with a cleartext password', async () => {
    for (const user of [pg.md5User, pg.cleartextUser]) {
      const session = await connectUpstream(resource({ user }), new Map());
      try {
        assert.deepEqual(await query(session, 'SELECT current_user'), [user]);
      } finally {
        session.socket.destroy();
      }
    }
  });

  it('reads the password from an environment variable or a file', async () => {
    process.env.GAPWATCH_TEST_PG_PASSWORD = pg.password;
    const file = join(dir, 'password');
    writeFileSync(file, `${pg.password}\n`);
    try {
      for (const password of [{ env: 'GAPWATCH_TEST_PG_PASSWORD' }, { file }]) {
        const session = await connectUpstream(resource({ password }), new Map());
        assert.deepEqual(await query(session, 'SELECT 1'), ['1']);
        session.socket.destroy();
      }
    } finally {
      delete process.env.GAPWATCH_TEST_PG_PASSWORD;
    }
    await assert.rejects(connectUpstream(resource({ password: { env: 'GAPWATCH_TEST_PG_UNSET' } }), new Map()), CredentialUnavailableError);
  });

  it('logs in over TLS when the resource requires it, and over the unix socket', async () => {
    const tls = await connectUpstream(resource({ tls: 'require' }), new Map());
    assert.deepEqual(await query(tls, 'SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()'), ['true']);
    tls.socket.destroy();
    const unix = await connectUpstream(resource({ socket: pg.socketDir }), new Map());
    assert.deepEqual(await query(unix, 'SELECT 1'), ['1']);
    unix.socket.destroy();
  });

  it('refuses a wrong password without revealing it', async () => {
    const err = await connectUpstream(resource({ password: { value: 'wrong-secret-value' } }), new Map()).then(
      () => assert.fail('login succeeded'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof UpstreamConnectError);
    assert.match(err.message, /28P01/);
    assert.doesNotMatch(err.message, /wrong-secret-value/);
  });
});
