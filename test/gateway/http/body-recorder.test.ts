import assert from 'node:assert/strict';
import { BodyRecorder } from '../../../gateway/http/audit-format';

describe('gateway/http BodyRecorder', () => {
  it('keeps the credential the gateway injected out of a recorded body that echoes it, split across chunks too (regression: found by the secrets end-to-end test)', () => {
    const secret = 'upstream-secret-0123456789';
    const recorder = new BodyRecorder('application/json', '', 4096, false, [secret]);
    const body = Buffer.from(JSON.stringify({ rawHeaders: ['Authorization', `Bearer ${secret}`], again: secret }));
    const cut = body.indexOf(secret) + 5;
    recorder.push(body.subarray(0, cut));
    recorder.push(body.subarray(cut));
    const snapshot = recorder.snapshot();
    assert.equal(snapshot.size, String(body.length));
    assert.ok(!snapshot.text!.includes(secret), snapshot.text);
    assert.equal(snapshot.text!.split('[redacted]').length - 1, 2);
    const binary = new BodyRecorder('application/octet-stream', '', 4096, true, [secret]);
    binary.push(Buffer.concat([Buffer.from([0, 1]), Buffer.from(secret), Buffer.from([2])]));
    assert.equal(Buffer.from(binary.snapshot().data as Uint8Array).indexOf(secret), -1);
    const plain = new BodyRecorder('text/plain', '', 4096, false);
    plain.push(Buffer.from(secret));
    assert.equal(plain.snapshot().text, secret, 'without secrets to keep out, the body is recorded as it came');
  });
});
