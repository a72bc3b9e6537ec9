import assert from 'node:assert/strict';
import { AgentMatcher, DEFAULT_AGENT_SIGNATURES } from '../../../collector/sensor/agent-signatures';

describe('collector/sensor/agent-signatures', () => {
  const matcher = new AgentMatcher(DEFAULT_AGENT_SIGNATURES);
  const image = (filename: string, argv: string[], comm = filename.split('/').pop()!.slice(0, 15)) => ({ filename, comm, argv });

  it('matches agents by binary name', () => {
    assert.equal(matcher.match(image('/usr/local/bin/claude', ['claude', '-p', 'hi'])), 'claude');
    assert.equal(matcher.match(image('/home/u/.local/bin/cursor-agent', ['cursor-agent'])), 'cursor-agent');
    assert.equal(matcher.match(image('/opt/runner/bin/Runner.Worker', ['Runner.Worker', 'spawnclient', '1', '2'])), 'github-actions');
  });

  it('matches agents that run under an interpreter by script and package path', () => {
    assert.equal(matcher.match(image('/usr/bin/node', ['node', '/usr/lib/node_modules/@openai/codex/bin/codex.js'])), 'codex');
    assert.equal(matcher.match(image('/usr/bin/node', ['node', '/usr/local/bin/gemini'])), 'gemini');
    assert.equal(matcher.match(image('/usr/bin/python3', ['python3', '-m', 'aider', '--model', 'x'])), 'aider');
  });

  it('does not match ordinary processes', () => {
    assert.equal(matcher.match(image('/usr/bin/git', ['git', 'status'])), null);
    assert.equal(matcher.match(image('/usr/bin/node', ['node', 'server.js', '--name', 'claude-notes'])), null);
  });

  it('uses configured signatures', () => {
    const custom = new AgentMatcher([{ agent: 'house-bot', binaries: ['hb'], argv: ['--agent-mode'] }]);
    assert.equal(custom.match(image('/bin/hb', ['hb'])), 'house-bot');
    assert.equal(custom.match(image('/bin/x', ['x', '--agent-mode'])), 'house-bot');
    assert.equal(custom.match(image('/usr/local/bin/claude', ['claude'])), null);
  });
});
