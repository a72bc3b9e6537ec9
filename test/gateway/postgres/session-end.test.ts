import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { serialize } from 'pg-protocol';
import type { BackendMessage, DatabaseError } from 'pg-protocol/dist/messages';
import type { Session__Output } from '../../../proto/generated/gapwatch/v1/Session';
import { waitUntil } from '../../support/gapwatch-processes';
import { runCli } from '../../support/host';
import { startGateway, type GatewayUnderTest } from '../../support/pg-gateway';
import { pausedLogin, rawSession, type Target } from './clients';

/**
 * Test of how PostgreSQL sessions end when nobody waits for them: an agent that leaves with a statement
 * held for review, an agent whose identity stops being valid while its session is open, a gateway that
 * stops with sessions served and one still logging in.
 */

const fatal = (messages: BackendMessage[]): DatabaseError | undefined =>
  messages.find((m): m is DatabaseError => m.name === 'error' && (m as DatabaseError).severity === 'FATAL');

for (const dataPath of ['auto', 'node'] as const)
  describe(`gateway/postgres sessions that end early: agent gone while held, gateway shutdown (real PostgreSQL 15) — ${dataPath} data path`, function () {
    this.timeout(60_000);
    let gw: GatewayUnderTest;
    let target: Target;

    before(async () => {
      gw = await startGateway({
        postgres: { dataPath },
        // Reviews outlast the test's timeout: a session waiting for one instead of ending shows as a hang.
        policy: {
          builtinRules: false,
          default: 'allow',
          reviewTimeoutSeconds: 600,
          rules: [{ name: 'held-needs-review', relations: ['held'], classes: ['write'], action: 'review', reason: 'writes to held need a human' }],
        },
      });
      target = gw.agent;
      await gw.pg.admin('SET ROLE gw_upstream; CREATE TABLE held (id int)', gw.pg.database);
    });
    after(async () => {
      await gw?.stop();
    });

    /** The journal's record of the session's end, for the agent connection from `port`. */
    async function sessionEnd(port: number): Promise<Session__Output> {
      let end: Session__Output | undefined;
      await waitUntil(async () => {
        end = (await gw.records()).find((r) => r.session?.client?.port === port && r.session.outcome !== 'SESSION_OUTCOME_OPEN')?.session ?? undefined;
        return end !== undefined;
      }, 'the end of the session in the journal');
      return end!;
    }

    it('ends the session when the agent sends a held statement and leaves at once; the review is withdrawn and nothing runs', async () => {
      const login = await pausedLogin(target);
      login.finish();
      await login.until((m) => m.name === 'readyForQuery');
      // The statement and the FIN in one go: the agent is gone before the gateway decides to hold it.
      login.socket.end(serialize.query('INSERT INTO held VALUES (43)'));
      await login.closed;
      // The session's last record follows the close of the agent's connection.
      assert.equal((await sessionEnd(login.localPort)).outcome, 'SESSION_OUTCOME_CLOSED');
      const pending = await runCli(['reviews', '--config', gw.configFile]);
      assert.equal(pending.stdout, 'no reviews pending\n', 'the review was withdrawn with the session');
      assert.equal(await gw.pg.admin('SELECT count(*) FROM held', gw.pg.database), '0');
    });

    it('ends the session when the agent leaves after extended messages it never synced (the server answers them only at a Sync)', async () => {
      // Found by the fuzzer: a named Parse and the FIN; the native loop waited for a ParseComplete that never comes.
      for (const tail of [[serialize.parse({ name: 's1', text: 'select $1::int + 1', types: [23] })], [serialize.parse({ text: 'select 1' }), serialize.bind({}), serialize.execute({})]]) {
        const login = await pausedLogin(target);
        login.finish();
        await login.until((m) => m.name === 'readyForQuery');
        login.socket.end(Buffer.concat(tail));
        await login.closed;
        assert.equal((await sessionEnd(login.localPort)).outcome, 'SESSION_OUTCOME_CLOSED');
      }
    });

    it('gives a child process spawned during a session none of its sockets (the native loop\'s copies are close-on-exec)', async () => {
      // An in-process gateway beside other work (the collector's tests, a hook) spawns processes; a
      // session socket inherited by one stays open after the gateway closes it, and the agent's
      // connection never ends (a gateway-feed test hung on it).
      const conn = await rawSession(target);
      const child = spawn('sleep', ['30'], { stdio: 'ignore' });
      try {
        await new Promise<void>((resolve, reject) => child.once('spawn', resolve).once('error', reject));
        const inherited = readdirSync(`/proc/${child.pid}/fd`).map((fd) => {
          try {
            return readlinkSync(`/proc/${child.pid}/fd/${fd}`);
          } catch {
            return '';
          }
        });
        assert.deepEqual(inherited.filter((target) => target.startsWith('socket:')), []);
      } finally {
        child.kill('SIGKILL');
        conn.close();
      }
    });

    it('ends an open session when its identity is revoked, issued a new token or expires: FATAL 57P01 with the reason, journaled as failed; other sessions go on', async () => {
      const open = async (user: string, password: string): Promise<Awaited<ReturnType<typeof rawSession>>> => {
        const conn = await rawSession({ ...target, user, password });
        assert.ok((await conn.exchange([serialize.query('SELECT 1')])).some((m) => m.name === 'dataRow'));
        return conn;
      };
      const revoked = await open('revoked-agent', (await gw.identities.create('revoked-agent')).token);
      const reissued = await open('reissued-agent', (await gw.identities.create('reissued-agent')).token);
      const expiring = await open('expiring-agent', (await gw.identities.create('expiring-agent', { expiresAt: new Date(Date.now() + 1500) })).token);
      const other = await open(gw.login, gw.token);
      const ended = [revoked, reissued, expiring].map((conn) => conn.sendUntilClose([]));
      await gw.identities.revoke('revoked-agent');
      await gw.identities.create('reissued-agent', { replace: true });

      const expected: Array<[Awaited<ReturnType<typeof rawSession>>, RegExp]> = [
        [revoked, /identity "revoked-agent" was revoked/],
        [reissued, /identity "reissued-agent" was issued a new token/],
        [expiring, /identity "expiring-agent" (expired|was revoked or has expired)/],
      ];
      for (let i = 0; i < expected.length; i++) {
        const [conn, reason] = expected[i]!;
        const end = fatal(await ended[i]!);
        assert.equal(end?.code, '57P01');
        assert.match(end.message, reason);
        const journaled = await sessionEnd(conn.localPort);
        assert.equal(journaled.outcome, 'SESSION_OUTCOME_FAILED');
        assert.match(journaled.failure, reason);
      }
      assert.ok((await other.exchange([serialize.query('SELECT 2')])).some((m) => m.name === 'dataRow'), 'a session of a valid identity is left alone');
      other.close();
    });

    it('ends a served session and one still logging in with FATAL 57P01 at shutdown, journals both, and stops', async () => {
      const nativeBefore = gw.gateway.nativeSessionsServed;
      const served = await rawSession(target);
      const answered = await served.exchange([serialize.query('SELECT 1')]);
      assert.ok(answered.some((m) => m.name === 'dataRow'));
      const servedClosed = served.sendUntilClose([]);
      const login = await pausedLogin(target);

      const stopped = gw.gateway.stop();
      // The login completes after stop() began: the gateway must not hand it to a data path that is
      // stopping (the native loop takes no more sessions), and stop() must not wait for it forever.
      login.finish();
      await stopped;

      const servedEnd = fatal(await servedClosed);
      assert.equal(servedEnd?.code, '57P01', 'the served session is told the gateway is shutting down');
      const loginEnd = fatal(await login.closed);
      assert.equal(loginEnd?.code, '57P01', 'the late login is told the gateway is shutting down');
      assert.match(loginEnd.message, /shutting down/);

      const ends = new Map<number, Session__Output>();
      for (const r of await gw.records()) if (r.session && r.session.outcome !== 'SESSION_OUTCOME_OPEN') ends.set(r.session.client!.port, r.session);
      assert.equal(ends.get(served.localPort)?.outcome, 'SESSION_OUTCOME_CLOSED');
      const late = ends.get(login.localPort);
      assert.equal(late?.outcome, 'SESSION_OUTCOME_FAILED');
      assert.match(late.failure, /shutting down/);
      if (dataPath === 'auto') assert.equal(gw.gateway.nativeSessionsServed, nativeBefore + 1, 'only the session served before the stop ran natively');
    });
  });
