import assert from 'node:assert/strict';
import { parseConfig } from '../../../platform/config';

describe('gateway/http configuration', () => {
  it('refuses a head deadline longer than the whole request\'s, naming the key (Node would refuse to start the listener)', () => {
    assert.throws(
      () => parseConfig(['gateway:', '  http:', '    limits: { requestTimeoutMs: 800 }'].join('\n')),
      /headersTimeoutMs[\s\S]*must not exceed requestTimeoutMs/,
    );
    const { gateway } = parseConfig(['gateway:', '  http:', '    limits: { requestTimeoutMs: 800, headersTimeoutMs: 500 }'].join('\n'));
    assert.equal(gateway.http.limits.headersTimeoutMs, 500);
  });

  it('takes review as a rule action and as the default', () => {
    const { gateway } = parseConfig(['gateway:', '  http:', '    default: review', '    rules:', '      - { name: r, paths: ["/x/**"], action: review }'].join('\n'));
    assert.equal(gateway.http.default, 'review');
    assert.equal(gateway.http.rules[0]!.action, 'review');
  });
});
