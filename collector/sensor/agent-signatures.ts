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
  private readonly compiled: { agent: string; binaries: Set<string>; argv: RegExp[] }[];

  constructor(signatures: readonly AgentSignature[]) {
    this.compiled = signatures.map((s) => ({
      agent: s.agent,
      binaries: new Set(s.binaries),
      argv: s.argv.map((pattern) => new RegExp(pattern)),
    }));
  }

  /** The agent this process image is, or null. */
  match(image: ProcessImage): string | null {
    const names = new Set<string>([basename(image.filename), image.comm]);
    const argv0 = image.argv[0];
    if (argv0 !== undefined) {
      names.add(basename(argv0));
      const script = image.argv.slice(1).find((a) => !a.startsWith('-'));
      if (INTERPRETERS.test(basename(argv0)) && script !== undefined) names.add(basename(script));
    }
    const line = image.argv.join(' ');
    for (const signature of this.compiled) {
      for (const name of names) if (signature.binaries.has(name)) return signature.agent;
      for (const pattern of signature.argv) if (pattern.test(line)) return signature.agent;
    }
    return null;
  }
}
