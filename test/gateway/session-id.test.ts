import assert from 'node:assert/strict';
import { newSessionId } from '../../gateway/session-id';

describe('gateway session ids', () => {
  it('are 26 Crockford base32 characters and sort by creation, within one millisecond too', () => {
    const ids = [newSessionId(1_700_000_000_000), newSessionId(1_700_000_000_000), newSessionId(1_700_000_000_000), newSessionId(1_700_000_000_001)];
    for (let i = 0; i < 1000; i++) ids.push(newSessionId(1_700_000_000_002));
    assert.ok(ids.every((id) => /^[0-9A-HJKMNP-TV-Z]{26}$/.test(id)));
    assert.deepEqual([...ids].sort(), ids);
    assert.equal(new Set(ids).size, ids.length);
    assert.ok(newSessionId(1_700_000_000_000) < newSessionId(1_800_000_000_000));
  });
});
