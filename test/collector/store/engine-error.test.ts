import assert from 'node:assert/strict';
import { engineError } from '../../../collector/store/connection';
import { isRejectedData } from '../../../collector/store/writer';

describe('collector/store engine errors from the raw insert', () => {
  it('carry the ClickHouse error name as type, so the writer tells bad data from an unreachable store', () => {
    const plain = engineError(
      new Error("Code: 41. DB::Exception: Cannot parse datetime: Cannot parse DateTime from String: while converting 'not a time 3' to DateTime64(9, 'UTC'): (at row 4)\n: While executing ParallelParsingBlockInputFormat. (CANNOT_PARSE_DATETIME) (version 25.8.2.1)"),
    ) as Error & { type?: string; code?: string };
    assert.equal(plain.type, 'CANNOT_PARSE_DATETIME');
    assert.equal(plain.code, '41');
    assert.match(plain.message, /^Cannot parse datetime/);
    assert.equal(isRejectedData(plain), true);

    const other = engineError(new Error('DB::Exception: Type mismatch in column pid (TYPE_MISMATCH), while inserting')) as Error & { type?: string };
    assert.equal(other.type, 'TYPE_MISMATCH');
    assert.equal(isRejectedData(other), true);

    const unnamed = new Error('the engine is shutting down');
    assert.equal(engineError(unnamed), unnamed);
    assert.equal(isRejectedData(engineError(unnamed)), false);
    assert.equal(isRejectedData(engineError(new Error('Code: 210. DB::Exception: Connection refused (NETWORK_ERROR)'))), false);
  });
});
