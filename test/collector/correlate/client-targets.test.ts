import assert from 'node:assert/strict';
import { clientName, clientTargets } from '../../../collector/correlate/client-targets';

const KNOWN = new Set(['psql', 'pg_dump', 'ssh', 'scp', 'curl', 'nc']);

describe('collector/correlate client targets (exec detections)', () => {
  it('recognises clients by file name or argv[0]', () => {
    assert.equal(clientName('/usr/lib/postgresql/15/bin/psql', ['psql'], KNOWN), 'psql');
    assert.equal(clientName('/usr/bin/perl', ['/usr/bin/pg_dump', '-h', 'db'], KNOWN), 'pg_dump');
    assert.equal(clientName('/usr/bin/python3', ['python3', 'psql.py'], KNOWN), null);
  });

  it('reads libpq options, URIs and conninfo strings, with socket directories', () => {
    assert.deepEqual(clientTargets('psql', ['psql', '-h', 'db.internal', '-p', '6000', '-d', 'app']), [{ host: 'db.internal', port: 6000, unixPath: null }]);
    assert.deepEqual(clientTargets('psql', ['psql', '--host=10.0.0.5']), [{ host: '10.0.0.5', port: 5432, unixPath: null }]);
    assert.deepEqual(clientTargets('pg_dump', ['pg_dump', 'postgresql://u@[::1]:5433/app']), [{ host: '::1', port: 5433, unixPath: null }]);
    assert.deepEqual(clientTargets('psql', ['psql', 'host=/run/pg port=5999 dbname=app']), [{ host: '/run/pg', port: 5999, unixPath: '/run/pg/.s.PGSQL.5999' }]);
  });

  it('reads ssh destinations and ports, curl URLs and generic host/port pairs', () => {
    assert.deepEqual(clientTargets('ssh', ['ssh', '-p', '2222', 'deploy@bastion', 'uptime']), [{ host: 'bastion', port: 2222, unixPath: null }]);
    assert.deepEqual(clientTargets('scp', ['scp', 'dump.sql', 'ops@db1:/tmp/']), [{ host: 'db1', port: 22, unixPath: null }]);
    assert.deepEqual(clientTargets('curl', ['curl', '-s', 'https://api.internal/v1']), [{ host: 'api.internal', port: 443, unixPath: null }]);
    assert.deepEqual(clientTargets('nc', ['nc', '-v', '10.1.1.1', '5432']), [{ host: '10.1.1.1', port: 5432, unixPath: null }]);
  });

  it("skips the values of ssh/scp/sftp options and reads the port from -p, -P or -o Port=", () => {
    const options = ['-F', '/dev/null', '-o', 'BatchMode=yes', '-i', '/k/id_ed25519', '-o', 'UserKnownHostsFile=/k/known'];
    assert.deepEqual(clientTargets('ssh', ['ssh', ...options, '-o', 'Port=2222', 'root@127.0.0.1', 'echo hi']), [{ host: '127.0.0.1', port: 2222, unixPath: null }]);
    assert.deepEqual(clientTargets('ssh', ['ssh', '-oPort=2200', '-l', 'ops', 'web1.internal']), [{ host: 'web1.internal', port: 2200, unixPath: null }]);
    assert.deepEqual(clientTargets('ssh', ['ssh', '-vp2201', 'web1']), [{ host: 'web1', port: 2201, unixPath: null }]);
    // scp's -p preserves times (a flag) and its port is -P.
    assert.deepEqual(clientTargets('scp', ['scp', '-p', '-P', '2022', 'dump.sql', 'ops@db1:/tmp/']), [{ host: 'db1', port: 2022, unixPath: null }]);
    assert.deepEqual(clientTargets('sftp', ['sftp', '-P', '2023', '-i', 'key', 'ops@db2']), [{ host: 'db2', port: 2023, unixPath: null }]);
  });
});
