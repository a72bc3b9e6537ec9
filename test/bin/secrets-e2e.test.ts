import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client as PgClient } from 'pg';
import { Client as SshClient } from 'ssh2';
import { stringify } from 'yaml';
import { openStore } from '../../collector/store/connection';
import { quoteIdent } from '../../collector/store/ddl';
import { FileIdentityStore } from '../../gateway/identity/identity-store';
import { parseConfig } from '../../platform/config';
import { cliPath, requireRoot } from '../support/host';
import { startHttpUpstream, type HttpUpstream } from '../support/http-upstream';
import { freePort, startPostgres, type PostgresServer } from '../support/postgres';
import { startSshd, type SshServer } from '../support/sshd';

/**
 * Secrets never reach logs or the store: `gapwatch up` (gateway with PostgreSQL, HTTP and SSH
 * resources, collector with the host sensor, embedded store) runs agent traffic on all three
 * protocols and a process with secrets in its argv, at log level debug. Then every log line, every
 * file under the data directory (journal, spool, positions, keys …) and every column of every row of
 * every store table is searched for the injected upstream credentials and the agent's token.
 */
describe('secrets stay out of logs, journal, spool and store (gapwatch up, end to end)', function () {
  this.timeout(180_000);
  let pg: PostgresServer | null = null;
  let upstream: HttpUpstream | null = null;
  let sshd: SshServer | null = null;
  let up: ChildProcess | null = null;
  let dir = '';

  after(async () => {
    up?.kill('SIGKILL');
    await pg?.stop();
    await upstream?.stop();
    await sshd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('finds none of the upstream passwords, the resource credential, the SSH key or the agent token anywhere, and argv secrets redacted', async () => {
    requireRoot();
    pg = await startPostgres();
    upstream = await startHttpUpstream();
    sshd = await startSshd();
    dir = mkdtempSync(join(tmpdir(), 'gapwatch-secrets-'));
    const dataDir = join(dir, 'data');
    const httpSecret = `http-upstream-secret-${Date.now().toString(36)}x`;
    const sshKeyLine = readFileSync(sshd.clientKeyFile, 'utf8').split('\n')[2]!;
    assert.ok(sshKeyLine.length > 40, 'a line of the private key body');
    const [pgPort, httpPort, sshPort] = [await freePort(), await freePort(), await freePort()];
    const document = {
      dataDir,
      log: { level: 'debug', format: 'json' },
      gateway: {
        id: 'gw-secrets',
        postgres: {
          listen: { host: '127.0.0.1', port: pgPort },
          resources: [{ name: 'orders', upstream: { host: pg.host, port: pg.port, database: pg.database, user: pg.user, password: { value: pg.password } } }],
        },
        http: {
          listen: { host: '127.0.0.1', port: httpPort },
          resources: [{ name: 'api', pathPrefix: '/api/', upstream: { url: upstream.url }, credential: { header: 'Authorization', scheme: 'Bearer', source: { value: httpSecret } } }],
        },
        ssh: {
          listen: { host: '127.0.0.1', port: sshPort },
          resources: [{ name: 'web1', upstream: { host: sshd.host, port: sshd.port, user: sshd.user, hostKeys: [sshd.hostPublicKey], privateKey: { file: sshd.clientKeyFile } } }],
        },
      },
    };
    const configFile = join(dir, 'gapwatch.yaml');
    writeFileSync(configFile, stringify(document));
    parseConfig(stringify(document));
    const { token } = await new FileIdentityStore({ dataDir }).create('claude-ci', { claims: { repository: 'acme/shop' } });
    const secrets: Record<string, string> = { 'PostgreSQL upstream password': pg.password, 'HTTP resource credential': httpSecret, 'SSH upstream private key': sshKeyLine, 'agent token': token };
    const argvSecret = `argv-secret-${Date.now().toString(36)}`;

    let output = '';
    up = spawn(process.execPath, [cliPath, 'up', '--config', configFile], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    up.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => up!.on('close', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (output.includes('Press Ctrl-C to stop.')) resolve();
      };
      up!.stdout!.on('data', check);
      up!.on('close', () => reject(new Error(`up exited early:\n${output}`)));
    });

    // PostgreSQL: SCRAM with the token; the statement itself is the agent's and is recorded.
    const client = new PgClient({ host: '127.0.0.1', port: pgPort, user: 'claude-ci', password: token, database: 'orders' });
    await client.connect();
    assert.equal((await client.query('select 40 + 2 as n')).rows[0].n, 42);
    await client.end();
    const refused = new PgClient({ host: '127.0.0.1', port: pgPort, user: 'claude-ci', password: `${token}x`, database: 'orders' });
    await assert.rejects(refused.connect());
    // HTTP: bearer and Basic, the upstream sees the resource credential.
    const response = await fetch(`http://127.0.0.1:${httpPort}/api/echo/items?color=red`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(response.status, 200);
    const echoed = (await response.json()) as { rawHeaders: string[] };
    assert.ok(echoed.rawHeaders.includes(`Bearer ${httpSecret}`), 'the upstream got the resource credential');
    const basic = await fetch(`http://127.0.0.1:${httpPort}/api/echo/b`, { method: 'POST', body: 'x', headers: { authorization: `Basic ${Buffer.from(`claude-ci:${token}`).toString('base64')}` } });
    assert.equal(basic.status, 200);
    // SSH: the token as the password.
    const sshOut = await new Promise<string>((resolve, reject) => {
      const ssh = new SshClient();
      ssh.on('error', reject);
      ssh.on('ready', () =>
        ssh.exec('echo through-the-gateway', (err, stream) => {
          if (err) return reject(err);
          let out = '';
          stream.on('data', (chunk: Buffer) => (out += chunk.toString()));
          stream.on('close', () => {
            ssh.end();
            resolve(out);
          });
        }),
      );
      ssh.connect({ host: '127.0.0.1', port: sshPort, username: 'claude-ci@web1', password: token, hostVerifier: () => true, readyTimeout: 30_000 });
    });
    assert.equal(sshOut.trim(), 'through-the-gateway');
    // A process with secrets in its argv, as agents run them.
    const argv = ['-c', 'sleep 0.3', 'gapwatch-secret-argv', `--password=${argvSecret}`, `PGPASSWORD=${argvSecret}`, `postgresql://app:${argvSecret}@db/orders`, '--token', token, token];
    await new Promise<void>((resolve) => spawn('/bin/sh', argv, { stdio: 'ignore' }).on('close', () => resolve()));
    secrets['argv secret'] = argvSecret;

    // Let the collector take the journal and the exec, then stop (which flushes the writer).
    await new Promise((resolve) => setTimeout(resolve, 2500));
    up.kill('SIGTERM');
    assert.equal(await exited, 0, output);
    up = null;

    const found: string[] = [];
    /** Records each secret found, with the text around it (the secret itself masked) to say where it came from. */
    const search = (where: string, text: string): void => {
      for (const [name, secret] of Object.entries(secrets)) {
        const at = text.indexOf(secret);
        if (at >= 0) found.push(`${name} in ${where}: …${text.slice(Math.max(0, at - 120), at + secret.length + 60).replaceAll(secret, '<SECRET>')}…`);
      }
    };
    const lines = output.split('\n').filter((line) => line.trim() !== '');
    assert.ok(lines.filter((line) => line.startsWith('{')).length > 10, 'debug log lines were captured');
    for (const line of lines) search('the log', line);

    const files: string[] = [];
    const walk = (path: string): void => {
      for (const name of readdirSync(path)) {
        const full = join(path, name);
        if (statSync(full).isDirectory()) walk(full);
        else files.push(full);
      }
    };
    walk(dataDir);
    assert.ok(files.some((f) => f.endsWith('.seg')), 'journal segments were scanned');
    for (const file of files) search(file.slice(dataDir.length + 1), readFileSync(file).toString('latin1'));

    const config = parseConfig(stringify(document));
    const store = await openStore(config);
    try {
      const database = config.store.database;
      const tables = await (await store.client.query({ query: `SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name`, query_params: { db: database }, format: 'JSONEachRow' })).json<{ name: string }>();
      assert.ok(tables.length >= 7, tables.map((t) => t.name).join(','));
      const counts: Record<string, number> = {};
      for (const { name } of tables) {
        const rows = await (await store.client.query({ query: `SELECT * FROM ${quoteIdent(database)}.${quoteIdent(name)}`, format: 'JSONEachRow' })).text();
        counts[name] = rows.split('\n').filter((line) => line !== '').length;
        for (const row of rows.split('\n')) search(`store table ${name}`, row);
        // Values the store holds as base64 (journal_records.record) are searched decoded too.
        if (name === 'journal_records') {
          for (const line of rows.split('\n').filter((l) => l !== '')) search(`store table ${name} (decoded record)`, Buffer.from((JSON.parse(line) as { record: string }).record, 'base64').toString('latin1'));
        }
      }
      // The traffic reached the store, so the search looked at real rows.
      assert.ok(counts.gateway_sessions! >= 4 && counts.journal_records! > 10 && counts.gateway_session_events! > 0, JSON.stringify(counts));
      const exec = await (
        await store.client.query({ query: `SELECT argv, argv_truncated FROM ${quoteIdent(database)}.process_events WHERE has(argv, 'gapwatch-secret-argv')`, format: 'JSONEachRow' })
      ).json<{ argv: string[] }>();
      assert.ok(exec.length > 0, 'the exec with secrets in argv was stored');
      assert.ok(exec[0]!.argv.some((arg) => arg.includes('****')), JSON.stringify(exec[0]));
    } finally {
      await store.close();
    }
    assert.deepEqual(found, []);
  });
});
