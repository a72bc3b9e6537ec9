import { basename } from 'node:path';

/**
 * What makes a process the root of an agent run: its binary name, or a pattern over its argv (agents
 * shipped as npm packages run as `node …/cli.js`, Python ones as `python -m …`). Configured under
 * collector.sensor.agentSignatures; these are the defaults.
 */
export interface AgentSignature {
  agent: string;
  /** Basenames of the executable, argv[0], or the script an interpreter runs. */
  binaries: string[];
  /** Regular expressions tested against argv joined with spaces. */
  argv: string[];
}

export const DEFAULT_AGENT_SIGNATURES: AgentSignature[] = [
  { agent: 'claude', binaries: ['claude'], argv: ['@anthropic-ai/claude-code/'] },
  { agent: 'codex', binaries: ['codex'], argv: ['@openai/codex/'] },
  { agent: 'aider', binaries: ['aider'], argv: ['(^| )-m aider( |$)'] },
  { agent: 'cursor-agent', binaries: ['cursor-agent'], argv: [] },
  { agent: 'gemini', binaries: ['gemini'], argv: ['@google/gemini-cli/'] },
  { agent: 'copilot', binaries: ['copilot', 'github-copilot-cli'], argv: ['@github/copilot/', '(^|/)gh copilot( |$)'] },
  { agent: 'goose', binaries: ['goose'], argv: [] },
  { agent: 'opencode', binaries: ['opencode'], argv: ['opencode-ai/'] },
  // CI runners: the per-job worker, not the long-lived daemon, so each job is its own run.
  { agent: 'github-actions', binaries: ['Runner.Worker'], argv: [] },
  { agent: 'buildkite', binaries: [], argv: ['buildkite-agent bootstrap( |$)'] },
  { agent: 'gitlab-ci', binaries: [], argv: ['gitlab-runner(-helper)? (run-single|build)( |$)'] },
];

/** Interpreters whose first argument is the program that really runs. */
const INTERPRETERS = /^(node|nodejs|bun|deno|python[0-9.]*|ruby|perl|sh|bash|dash|zsh)$/;

export interface ProcessImage {
  filename: string;
  comm: string;
  argv: readonly string[];
}

export class AgentMatcher {
  /** Binary name -> agent; the first signature naming a binary wins, as in the configured order. */
  private readonly byBinary = new Map<string, string>();
  private readonly argvPatterns: { agent: string; pattern: RegExp }[];

  constructor(signatures: readonly AgentSignature[]) {
    for (const s of signatures) for (const name of s.binaries) if (!this.byBinary.has(name)) this.byBinary.set(name, s.agent);
    this.argvPatterns = signatures.flatMap((s) => s.argv.map((pattern) => ({ agent: s.agent, pattern: new RegExp(pattern) })));
  }

  /** The agent this process image is, or null. Runs for every exec, so it avoids allocating. */
  match(image: ProcessImage): string | null {
    const byName =
      this.byBinary.get(basename(image.filename)) ?? this.byBinary.get(image.comm) ?? (image.argv[0] !== undefined ? this.byBinary.get(basename(image.argv[0])) : undefined);
    if (byName !== undefined) return byName;
    const argv0 = image.argv[0];
    if (argv0 !== undefined && INTERPRETERS.test(basename(argv0))) {
      const script = image.argv.find((a, i) => i > 0 && !a.startsWith('-'));
      const agent = script === undefined ? undefined : this.byBinary.get(basename(script));
      if (agent !== undefined) return agent;
    }
    if (this.argvPatterns.length === 0) return null;
    const line = image.argv.join(' ');
    for (const { agent, pattern } of this.argvPatterns) if (pattern.test(line)) return agent;
    return null;
  }
}
