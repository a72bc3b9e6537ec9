import assert from 'node:assert/strict';
import { loadGatewayAddon } from '../../../native/binding';
import { literalShape } from '../../../gateway/policy/statement-classifier';
import { seededRandom } from '../../support/seeded-random';

/**
 * The native data path keeps literal-blind policy decisions by literal shape
 * (native/addon/literal-shape.cc); JavaScript says which decisions are literal-blind by the same
 * shape (literalShape() in statement-classifier.ts). Both must give the same key and the same
 * offsets back into the text for every text, or a decision would be reused for a text JavaScript
 * never judged alike, or a statement journaled with the wrong text.
 */

interface LiteralShapeHook {
  literalShapeForTest(text: Buffer): { key: Buffer; originals: number[] } | null;
}

function nativeHook(): LiteralShapeHook {
  const { exports, problem } = loadGatewayAddon();
  const hook = exports as Partial<LiteralShapeHook> | null;
  // The addon is part of every setup (npm test builds it): a missing one is a failure, never a skip.
  if (!hook || typeof hook.literalShapeForTest !== 'function') {
    throw new Error(`gapwatch_gateway.node with literalShapeForTest is not available (npm run setup builds it): ${problem ?? 'the addon predates it'}`);
  }
  return hook as LiteralShapeHook;
}

function assertSameShape(native: LiteralShapeHook, text: string): void {
  const js = literalShape(text);
  const cc = native.literalShapeForTest(Buffer.from(text, 'utf8'));
  if (js === null || cc === null) {
    assert.equal(cc === null, js === null, `shape of ${JSON.stringify(text)}: JavaScript ${js ? JSON.stringify(js.key) : 'none'}, native ${cc ? JSON.stringify(cc.key.toString('latin1')) : 'none'}`);
    return;
  }
  assert.equal(cc.key.toString('latin1'), js.key, `key of ${JSON.stringify(text)}`);
  const originals = Array.from({ length: js.key.length + 1 }, (_, i) => js.original(i));
  assert.deepEqual(cc.originals, originals, `offsets of ${JSON.stringify(text)}`);
}

describe('gateway/postgres literal shapes: native and JavaScript agree', () => {
  it('on the texts that matter: pgbench, bounded and unbounded digit runs, and every reason to refuse a shape', () => {
    const native = nativeHook();
    const texts = [
      'SELECT abalance FROM pgbench_accounts WHERE aid = 12345;',
      'UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 77;',
      'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (3, 1, 99, -5, CURRENT_TIMESTAMP);',
      'SELECT 1; SELECT 22',
      '1',
      '123456789',
      '1234567890', // ten digits: not replaced (could be a numeric constant)
      'SELECT t1, x2y, 3a, a3, _4, 5_, $6, 7$, 8.5, .9, 10., 1e5, 0x1F',
      'SELECT 1 -- a comment',
      'SELECT 1 /* a comment */',
      "SELECT 1, 'two'",
      'SELECT 1 FROM "T1"',
      'SELECT $$1$$',
      'SELECT E\'\\1\'',
      'SELECT 1 AS é',
      'SELECT 1\u007f',
      'SELECT 1-2, 3/4, 5*6, (7), [8], 9,10',
      'SELECT -1',
      'no digits at all',
      '',
      'SELECT\t1\n,\r2',
    ];
    for (const text of texts) assertSameShape(native, text);
  });

  it('on 20,000 seeded random texts of SQL-ish tokens', () => {
    const native = nativeHook();
    const seed = 0x5eed_5a9e;
    const next = seededRandom(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
    const tokens = ['SELECT', ' ', ' ', '\t', '\n', 'a', 't', 'e', 'x', '_', '$', '.', ',', '(', ')', '-', '+', '/', '*', ';', '=', "'", '"', '\\', 'é', '\u007f', '--', '/*'];
    const digits = (): string => Array.from({ length: 1 + Math.floor(next() * 12) }, () => String(Math.floor(next() * 10))).join('');
    for (let n = 0; n < 20_000; n++) {
      const parts: string[] = [];
      const length = Math.floor(next() * 14);
      // Most texts avoid the refusing characters, so that shapes are compared, not only refusals.
      const plain = next() < 0.7;
      for (let i = 0; i < length; i++) {
        if (next() < 0.45) parts.push(digits());
        else {
          let token = pick(tokens);
          while (plain && ["'", '"', '\\', 'é', '\u007f', '--', '/*', '$'].includes(token)) token = pick(tokens);
          parts.push(token);
        }
      }
      const text = parts.join('');
      try {
        assertSameShape(native, text);
      } catch (err) {
        (err as Error).message += ` (seed ${seed}, text ${n})`;
        throw err;
      }
    }
  });
});
