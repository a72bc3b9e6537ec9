import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig, parseConfig } from '../../platform/config';
import { ConfigInvalidError, ConfigUnreadableError } from '../../platform/errors';

function invalid(text: string): ConfigInvalidError {
  try {
    parseConfig(text, 'test.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigInvalidError, `expected ConfigInvalidError, got ${String(err)}`);
    return err;
  }
  assert.fail('configuration was accepted');
}

describe('platform/config', () => {
  it('gives every key a default, so no file is needed', () => {
    const config = parseConfig('');
    assert.equal(config.log.level, 'info');
    assert.equal(config.log.format, 'auto');
    assert.equal(config.collector.sensor.argvMaxBytes, 4096);
    assert.equal(config.gateway.id, 'gw-local');
    assert.equal(config.dataDir, resolve('.gapwatch'));
  });

  it('accepts a valid file and resolves dataDir', () => {
    const config = parseConfig('dataDir: /var/lib/gapwatch\nlog:\n  level: debug\ncollector:\n  sensor:\n    argvMaxBytes: 8192\n');
    assert.equal(config.dataDir, '/var/lib/gapwatch');
    assert.equal(config.log.level, 'debug');
    assert.equal(config.collector.sensor.argvMaxBytes, 8192);
  });

  it('refuses a bad enum value with key path, line, value and the allowed values', () => {
    const err = invalid('log:\n  level: loud\n');
    assert.equal(err.code, 'CONFIG_ERR_INVALID');
    assert.deepEqual(err.issues.map((i) => [i.path, i.value, i.line]), [['log.level', 'loud', 2]]);
    assert.match(err.message, /log\.level \(line 2\): got "loud", expected one of "trace", "debug", "info", "warn", "error", "fatal"/);
  });

  it('refuses a wrong type', () => {
    const err = invalid('collector:\n  sensor:\n    argvMaxBytes: lots\n');
    assert.match(err.message, /collector\.sensor\.argvMaxBytes \(line 3\): got "lots", expected a value of type number/);
  });

  it('refuses an argv cap below the 4 KiB floor', () => {
    const err = invalid('collector:\n  sensor:\n    argvMaxBytes: 1024\n');
    assert.match(err.message, /argvMaxBytes \(line 3\): got 1024, expected at least 4096/);
  });

  it('refuses a misspelt key and lists the keys that exist there', () => {
    const err = invalid('log:\n  levle: debug\n');
    assert.equal(err.issues[0]?.path, 'log.levle');
    assert.equal(err.issues[0]?.line, 2);
    assert.match(err.message, /no such key \(known keys here: level, format\)/);
  });

  it('reports every problem at once', () => {
    const err = invalid('log:\n  level: loud\ngateway:\n  id: Not_Valid\nextra: 1\n');
    assert.deepEqual(err.issues.map((i) => i.path).sort(), ['extra', 'gateway.id', 'log.level']);
  });

  it('refuses malformed YAML with its line', () => {
    const err = invalid('log:\n  level: [info\n');
    assert.equal(err.issues[0]?.path, '');
    assert.match(err.message, /expected valid YAML/);
  });

  it('refuses a document that is not a mapping', () => {
    const err = invalid('- a\n- b\n');
    assert.match(err.message, /\(root\).*expected a value of type object/);
  });

  it('loads the named file and says when it cannot be read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gapwatch-config-'));
    const file = join(dir, 'gapwatch.yaml');
    writeFileSync(file, 'gateway:\n  id: gw-7\n');
    const loaded = loadConfig(file);
    assert.equal(loaded.source, file);
    assert.equal(loaded.config.gateway.id, 'gw-7');
    assert.throws(() => loadConfig(join(dir, 'absent.yaml')), (err: unknown) => err instanceof ConfigUnreadableError && err.code === 'CONFIG_ERR_UNREADABLE');
  });
});
