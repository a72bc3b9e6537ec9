import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentIdentity } from '../../../gateway/identity/contract';
import type { MaskColumn, Masker } from '../../../gateway/policy/contract';
import { luhnValid } from '../../../gateway/policy/masker';
import { createPolicyEngine, type GatewayPolicyEngine } from '../../../gateway/policy/policy-engine';
import { parseConfig } from '../../../platform/config';

const AGENT: AgentIdentity = { login: 'claude-ci', subject: 'agent:claude-ci', claims: { team: 'growth' } };
const ADMIN: AgentIdentity = { login: 'dba', subject: 'human:dba', claims: {} };

const USERS_OID = 16384;

function maskRow(masker: Masker, row: Array<string | null>): Array<string | null> {
  return row.map((value, index) => masker.mask(index, value === null ? null : Buffer.from(value, 'utf8'))?.toString('utf8') ?? null);
}

describe('gateway/policy/masker', () => {
  let engine: GatewayPolicyEngine;
  before(async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'gapwatch-mask-')), 'data');
    const config = parseConfig(`
dataDir: ${dataDir}
gateway:
  policy:
    rules:
      - name: pii-for-agents
        subjects: ["agent:*"]
        action: mask
        mask:
          columns: [ssn, public.users.email, "accounts.*_token"]
          values: [email, card_number, { regex: "\\\\bAKIA[0-9A-Z]{16}\\\\b", name: aws-key }]
      - name: growth-phones
        claims: { team: growth }
        relations: [crm.*]
        action: mask
        mask:
          columns: [phone]
          replacement: "[phone]"
`);
    engine = await createPolicyEngine({ config: config.gateway.policy, dataDir });
  });
  after(() => engine?.close());

  it('masks named columns and table-qualified columns of the right table', () => {
    const columns: MaskColumn[] = [
      { name: 'id', tableOid: USERS_OID, relation: 'public.users' },
      { name: 'email', tableOid: USERS_OID, relation: 'public.users' },
      { name: 'SSN', tableOid: USERS_OID, relation: 'public.users' },
      { name: 'api_token', tableOid: 16390, relation: 'billing.accounts' },
      { name: 'email', tableOid: 16400, relation: 'public.newsletter' },
    ];
    const masker = engine.maskerFor('db', AGENT, columns)!;
    assert.deepEqual(masker.maskedColumns, [1, 2, 3]);
    assert.deepEqual(maskRow(masker, ['7', 'ann@example.com', '123-45-6789', 'tok_abc', 'bob@example.org']), [
      '7',
      '****',
      '****',
      '****',
      // Not the users table: the column stays, but the e-mail value pattern still applies.
      '****@example.org',
    ]);
    assert.equal(masker.mask(1, null), null);
  });

  it('fails closed when a table-qualified column’s table is unknown or computed', () => {
    const masker = engine.maskerFor('db', AGENT, [
      { name: 'email', tableOid: USERS_OID },
      { name: 'email', tableOid: 0 },
    ])!;
    assert.deepEqual(masker.maskedColumns, [0, 1]);
  });

  it('masks e-mail addresses, Luhn-valid card numbers and custom patterns inside text values', () => {
    const masker = engine.maskerFor('db', AGENT, [{ name: 'note', tableOid: 0 }])!;
    assert.deepEqual(masker.maskedColumns, []);
    const cases: Array<[string, string]> = [
      ['contact ann.lee+x@mail.example.com today', 'contact ****@mail.example.com today'],
      ['card 4111 1111 1111 1111 exp 12/29', 'card **** **** **** 1111 exp 12/29'],
      ['card 4111-1111-1111-1111', 'card ****-****-****-1111'],
      ['5500005555555559', '************5559'],
      // Not Luhn-valid: an order number, not a card.
      ['order 4111111111111112', 'order 4111111111111112'],
      ['key AKIAIOSFODNN7EXAMPLE leaked', 'key **** leaked'],
      ['nothing to see', 'nothing to see'],
    ];
    for (const [input, expected] of cases) assert.equal(masker.mask(0, Buffer.from(input))!.toString(), expected, input);
    const untouched = Buffer.from('plain');
    assert.equal(masker.mask(0, untouched), untouched, 'an unchanged value is passed through as is');
  });

  it('applies rules by identity and limits unqualified columns to the rule’s relations', () => {
    assert.equal(engine.maskerFor('db', ADMIN, [{ name: 'email', tableOid: USERS_OID, relation: 'public.users' }]), null);
    const phones = engine.maskerFor('db', { ...AGENT, subject: 'human:x' }, [
      { name: 'phone', tableOid: 1, relation: 'crm.contacts' },
      { name: 'phone', tableOid: 2, relation: 'public.staff' },
    ])!;
    assert.deepEqual(phones.maskedColumns, [0]);
    assert.deepEqual(maskRow(phones, ['+1 555 0100', '+1 555 0199']), ['[phone]', '+1 555 0199']);
  });

  it('does not decide statements: a mask rule never allows or denies', async () => {
    const decision = await engine.evaluate({ sessionId: 's', resource: 'db', identity: AGENT, via: 'query', text: 'SELECT ssn FROM users' });
    assert.deepEqual([decision.action, decision.rule], ['allow', null]);
  });

  it('masks binary-format fields by type: text as text, other masked columns as NULL, unreadable values as NULL', () => {
    const masker = engine.maskerFor('db', AGENT, [
      { name: 'ssn', tableOid: USERS_OID, relation: 'public.users', typeOid: 25 },
      { name: 'ssn', tableOid: USERS_OID, relation: 'public.users', typeOid: 23 },
      { name: 'note', tableOid: 0, typeOid: 1043 },
      { name: 'n', tableOid: 0, typeOid: 23 },
      { name: 'doc', tableOid: 0, typeOid: 3802 },
      { name: 'tags', tableOid: 0, typeOid: 1009 },
      { name: 'x', tableOid: 0 },
    ])!;
    const int4 = Buffer.from([0, 0, 0, 42]);
    assert.equal(masker.maskBinary(0, Buffer.from('123-45-6789'))!.toString(), '****');
    assert.equal(masker.maskBinary(1, int4), null);
    assert.equal(masker.maskBinary(2, Buffer.from('mail ann@example.com'))!.toString(), 'mail ****@example.com');
    assert.equal(masker.maskBinary(3, int4), int4);
    const jsonb = Buffer.concat([Buffer.from([1]), Buffer.from('{"e": "ann@example.com"}')]);
    assert.deepEqual(masker.maskBinary(4, jsonb), Buffer.concat([Buffer.from([1]), Buffer.from('{"e": "****@example.com"}')]));
    assert.equal(masker.maskBinary(5, Buffer.from([0, 0, 0, 1])), null);
    assert.equal(masker.maskBinary(6, Buffer.from('anything')), null);
    assert.equal(masker.maskBinary(0, null), null);
  });

  it('redacts sensitive values for the audit journal: mask rule patterns of the identity, and card numbers always', () => {
    const agent = engine.auditRedactor('db', AGENT)!;
    assert.equal(agent('ann@example.com paid with 4111 1111 1111 1111'), '****@example.com paid with **** **** **** 1111');
    const admin = engine.auditRedactor('db', ADMIN)!;
    assert.equal(admin('ann@example.com paid with 4111111111111111'), 'ann@example.com paid with ************1111');
    assert.equal(admin('order 42'), 'order 42');
  });

  it('checks card numbers with the Luhn algorithm', () => {
    assert.equal(luhnValid('79927398713'), true);
    assert.equal(luhnValid('79927398710'), false);
    assert.equal(luhnValid('4111111111111111'), true);
  });
});
