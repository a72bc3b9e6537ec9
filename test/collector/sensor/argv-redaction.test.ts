import assert from 'node:assert/strict';
import { REDACTED, redactArgv } from '../../../collector/sensor/argv-redaction';

describe('collector/sensor/argv-redaction', () => {
  const cases: [string[], string[]][] = [
    [['psql', 'postgres://app:s3cret@db:5432/x'], ['psql', `postgres://app:${REDACTED}@db:5432/x`]],
    [['mysql', '--password=hunter2', '-h', 'db'], ['mysql', `--password=${REDACTED}`, '-h', 'db']],
    [['tool', '--token', 'abc123', '--verbose'], ['tool', '--token', REDACTED, '--verbose']],
    [['env', 'PGPASSWORD=pw123', 'psql'], ['env', `PGPASSWORD=${REDACTED}`, 'psql']],
    [['git', 'push', 'https://x:ghp_0123456789abcdefghijABCDEFGHIJ012345@github.com/o/r'], ['git', 'push', `https://x:${REDACTED}@github.com/o/r`]],
    [['echo', 'ghp_0123456789abcdefghijABCDEFGHIJ012345'], ['echo', REDACTED]],
    [['aws', 'AKIAIOSFODNN7EXAMPLE'], ['aws', REDACTED]],
    [['sh', '-c', 'PGPASSWORD=pw psql -h db'], ['sh', '-c', `PGPASSWORD=${REDACTED} psql -h db`]],
    [['curl', '-H', 'Authorization: Bearer abc.def'], ['curl', '-H', `Authorization: Bearer ${REDACTED}`]],
    [['psql', 'host=db password=pw user=u'], ['psql', `host=db password=${REDACTED} user=u`]],
    // Regression (secrets end-to-end test): a gapwatch agent token on its own was stored as given.
    [['sh', '-c', 'true', 'gwt_pIg2GKMgf_A2FJNnX6Hpbpupwn7G2o6ZUnBNAwkqAqI'], ['sh', '-c', 'true', REDACTED]],
  ];
  for (const [input, expected] of cases) {
    it(`redacts ${JSON.stringify(input)}`, () => {
      const out = redactArgv(input);
      assert.deepEqual(out.argv, expected);
      assert.equal(out.redacted, true);
    });
  }

  it('leaves ordinary command lines alone and says so', () => {
    const argv = ['git', 'commit', '-m', 'fix password reset flow', 'https://github.com/o/r', '--verbose'];
    assert.deepEqual(redactArgv(argv), { argv, redacted: false });
  });
});
