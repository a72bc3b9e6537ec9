import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentIdentity } from '../gateway/identity/contract';
import { createPolicyEngine } from '../gateway/policy/policy-engine';
import { classifySql, loadStatementParser } from '../gateway/policy/statement-classifier';
import { parseConfig } from '../platform/config';
import { round, summarize } from './stats';

/**
 * Policy cost per statement: classification with PostgreSQL's parser plus rule evaluation, side by
 * side with classification alone and with the trivial baseline (a regex on the first keyword, which
 * is what a gateway without a parser does — and what CTEs, comments and multi-statements evade).
 * `npm run bench -- policy [rounds] [iterations]`.
 */
const WORKLOAD = [
  // pgbench's TPC-B-like transaction and -S select, with varying literals as in -M simple.
  (i: number) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${i % 100000};`,
  (i: number) => `UPDATE pgbench_accounts SET abalance = abalance + ${i % 5000} WHERE aid = ${i % 100000};`,
  (i: number) => `UPDATE pgbench_tellers SET tbalance = tbalance + ${i % 5000} WHERE tid = ${i % 10};`,
  (i: number) => `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${i % 10}, 1, ${i}, ${i % 5000}, CURRENT_TIMESTAMP);`,
  () => 'BEGIN;',
  () => 'END;',
  // Application-style queries.
  (i: number) =>
    `WITH recent AS (SELECT o.id, o.customer_id, sum(i.price * i.qty) AS total FROM public.orders o JOIN public.order_items i ON i.order_id = o.id WHERE o.created_at > now() - interval '${i % 30} days' GROUP BY 1, 2) SELECT c.email, r.total FROM recent r JOIN customers c ON c.id = r.customer_id ORDER BY r.total DESC LIMIT 20`,
  (i: number) => `WITH gone AS (DELETE FROM sessions WHERE expires_at < now() - interval '${i % 7} days' RETURNING id) SELECT count(*) FROM gone`,
];

const BASELINE_WRITE = /^\s*(insert|update|delete|merge|truncate|create|alter|drop|grant|revoke|copy)\b/i;

function baselineDecision(text: string): 'allow' | 'deny' {
  return BASELINE_WRITE.test(text) && /pgbench_branches/i.test(text) ? 'deny' : 'allow';
}

export async function run(args: string[]): Promise<{ name: string } & Record<string, unknown>> {
  const rounds = Number(args[0] ?? 7);
  const iterations = Number(args[1] ?? 4000);
  await loadStatementParser();
  const dataDir = mkdtempSync(join(tmpdir(), 'gapwatch-bench-policy-'));
  const config = parseConfig(`
dataDir: ${dataDir}
gateway:
  policy:
    rules:
      - { name: no-branch-writes, classes: [write], relations: [pgbench_branches], action: deny, reason: branches are read-only }
      - { name: sessions-review, classes: [write], relations: [public.sessions], action: review }
      - { name: readers, classes: [read, transaction], action: allow }
`);
  const engine = await createPolicyEngine({ config: config.gateway.policy, dataDir });
  const identity: AgentIdentity = { login: 'bench', subject: 'agent:bench', claims: {} };
  // Fresh literals for every pass (as -M simple sends them), so the text cache never helps; and the
  // extended protocol's case, the same few texts again and again, where it does.
  let pass = 0;
  const varying = (): string[] => {
    pass++;
    return Array.from({ length: iterations }, (_, i) => WORKLOAD[i % WORKLOAD.length]!(pass * iterations + i));
  };
  const repeated = Array.from({ length: iterations }, (_, i) => WORKLOAD[i % WORKLOAD.length]!(i % WORKLOAD.length));

  const measure = async (texts: readonly string[], work: (text: string) => unknown): Promise<number> => {
    const start = process.hrtime.bigint();
    for (const text of texts) await work(text);
    return Number(process.hrtime.bigint() - start) / 1e3 / texts.length;
  };
  const full: number[] = [];
  const cached: number[] = [];
  const classify: number[] = [];
  const baseline: number[] = [];
  const evaluate = (text: string) => engine.evaluate({ sessionId: 'bench', resource: 'pgbench', identity, via: 'query', text });
  // Warm-up: WASM compilation tiers, JIT of the walker.
  await measure(varying(), evaluate);
  for (let round = 0; round < rounds; round++) {
    full.push(await measure(varying(), evaluate));
    cached.push(await measure(repeated, evaluate));
    classify.push(await measure(varying(), (text) => classifySql(text)));
    baseline.push(await measure(varying(), baselineDecision));
  }
  engine.close();
  rmSync(dataDir, { recursive: true, force: true });
  const fullUs = summarize(full);
  const cachedUs = summarize(cached);
  const classifyUs = summarize(classify);
  const baselineUs = summarize(baseline);
  return {
    name: 'policy',
    statements_per_round: iterations,
    evaluate_us_per_statement: fullUs,
    evaluate_repeated_text_us_per_statement: cachedUs,
    classify_us_per_statement: classifyUs,
    baseline_regex_us_per_statement: baselineUs,
    evaluate_statements_per_second: Math.round(1e6 / fullUs.median),
    ratio_evaluate_vs_regex: round(fullUs.median / baselineUs.median, 1),
    ratio_evaluate_vs_classify: round(fullUs.median / classifyUs.median, 2),
  };
}
