import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Inventory } from '../../../collector/correlate/inventory';
import { ResourceReloader, type ReloadOutcome } from '../../../collector/correlate/resource-reload';
import { parseConfig } from '../../../platform/config';

function resourcesYaml(name: string, ip: string): string {
  return `collector:\n  resources:\n    - name: ${name}\n      upstream: [{ host: ${ip}, port: 5432 }]\n`;
}

describe('collector/correlate resource reload (configuration file watched, SIGHUP)', function () {
  this.timeout(30_000);
  let dir = '';
  let reloader: ResourceReloader | null = null;

  afterEach(() => {
    reloader?.stop();
    reloader = null;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('rebuilds the inventory when the file changes, keeps the old resources when it is invalid, and reloads on SIGHUP', async () => {
    dir = mkdtempSync(join(tmpdir(), 'gapwatch-reload-'));
    const file = join(dir, 'gapwatch.yaml');
    writeFileSync(file, resourcesYaml('orders', '10.0.0.5'));
    const logs: Array<{ level: number; msg: string }> = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as { level: number; msg: string }) });
    const inventory = new Inventory(60_000, log);
    const initial = parseConfig(resourcesYaml('orders', '10.0.0.5')).collector.resources;
    await inventory.setConfigured(initial);
    reloader = new ResourceReloader(file, inventory, initial, log, 50);
    const outcomes: ReloadOutcome[] = [];
    reloader.outcomes.push((o) => outcomes.push(o));
    reloader.start();
    const next = async (count: number): Promise<ReloadOutcome> => {
      const deadline = Date.now() + 10_000;
      while (outcomes.length < count) {
        if (Date.now() > deadline) assert.fail(`no reload after the change (outcomes ${JSON.stringify(outcomes)})`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return outcomes[count - 1]!;
    };

    writeFileSync(file, resourcesYaml('billing', '10.0.0.6'));
    assert.deepEqual(await next(1), { result: 'reloaded', why: 'file changed', resources: ['billing'] });
    assert.equal(inventory.matchInet('10.0.0.6', 5432)?.resource.name, 'billing');
    assert.equal(inventory.matchInet('10.0.0.5', 5432), undefined, 'the removed resource is no longer protected');

    writeFileSync(file, `${resourcesYaml('broken', '10.0.0.7')}      colour: blue\n`);
    const refused = await next(2);
    assert.equal(refused.result, 'refused');
    assert.deepEqual(refused.resources, ['billing']);
    assert.match(refused.error!, /collector\.resources\.0\.colour/);
    assert.equal(inventory.matchInet('10.0.0.6', 5432)?.resource.name, 'billing', 'the previous resources stay in force');
    assert.equal(inventory.matchInet('10.0.0.7', 5432), undefined);
    const error = logs.find((l) => l.level === 50);
    assert.ok(error, 'the refusal is logged as an error');
    assert.match(error.msg, /configuration reload refused, the previous protected resources stay in force \(billing\)/);

    // Replaced by a rename, as editors and config managers do.
    writeFileSync(join(dir, 'gapwatch.yaml.tmp'), resourcesYaml('payments', '10.0.0.8'));
    renameSync(join(dir, 'gapwatch.yaml.tmp'), file);
    let settled = await next(3);
    while (settled.result !== 'reloaded') settled = await next(outcomes.length + 1);
    assert.deepEqual(settled.resources, ['payments']);
    assert.equal(inventory.matchInet('10.0.0.8', 5432)?.resource.name, 'payments');

    const before = outcomes.length;
    process.kill(process.pid, 'SIGHUP');
    const hangup = await next(before + 1);
    assert.deepEqual(hangup, { result: 'unchanged', why: 'SIGHUP', resources: ['payments'] });
  });
});
