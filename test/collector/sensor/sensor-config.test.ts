import assert from 'node:assert/strict';
import { parseConfig } from '../../../platform/config';
import { DEFAULT_AGENT_SIGNATURES } from '../../../collector/sensor/agent-signatures';

describe('collector.sensor configuration', () => {
  it('defaults: 4 KiB argv, 8 MiB ring, redaction on, the built-in agent signatures, no env markers', () => {
    const sensor = parseConfig('{}').collector.sensor;
    assert.equal(sensor.argvMaxBytes, 4096);
    assert.equal(sensor.ringBytes, 8 * 1024 * 1024);
    assert.equal(sensor.redactArgv, true);
    assert.deepEqual(sensor.agentSignatures, DEFAULT_AGENT_SIGNATURES);
    assert.deepEqual(sensor.agentEnvMarkers, []);
  });

  it('takes custom signatures and markers', () => {
    const sensor = parseConfig(
      'collector:\n  sensor:\n    agentSignatures:\n      - agent: house-bot\n        binaries: [hb]\n    agentEnvMarkers: [GAPWATCH_AGENT_RUN]\n    agentCgroupMarkers:\n      - { agent: claude, pattern: "claude-.*\\\\.scope$" }\n',
    ).collector.sensor;
    assert.deepEqual(sensor.agentSignatures, [{ agent: 'house-bot', binaries: ['hb'], argv: [] }]);
    assert.deepEqual(sensor.agentEnvMarkers, ['GAPWATCH_AGENT_RUN']);
    assert.equal(sensor.agentCgroupMarkers[0]!.agent, 'claude');
  });

  it('refuses a ring size that is not a power of two, and an argv cap below Falco\'s 4096', () => {
    assert.throws(() => parseConfig('collector:\n  sensor:\n    ringBytes: 100000\n'), /collector\.sensor\.ringBytes.*power of two/s);
    assert.throws(() => parseConfig('collector:\n  sensor:\n    argvMaxBytes: 1024\n'), /collector\.sensor\.argvMaxBytes.*at least 4096/s);
    assert.throws(() => parseConfig('collector:\n  sensor:\n    redactArgs: false\n'), /redactArgs.*no such key/s);
  });
});
