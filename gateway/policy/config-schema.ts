import { z } from 'zod';
import type { StatementClass } from './contract';

export const STATEMENT_CLASSES = [
  'read',
  'write',
  'ddl',
  'dcl',
  'copy_from',
  'copy_to',
  'copy_program',
  'session',
  'transaction',
  'function_call',
  'utility',
] as const satisfies readonly StatementClass[];

const compiles = (source: string): boolean => {
  try {
    new RegExp(source, 'g');
    return true;
  } catch {
    return false;
  }
};

/** A value pattern masked wherever it appears in a text field. */
export const valuePatternSchema = z.union([
  z.enum(['email', 'card_number']),
  z.strictObject({
    regex: z.string().min(1).refine(compiles, 'a valid JavaScript regular expression'),
    /** Shown in audit summaries instead of the expression. */
    name: z.string().min(1).optional(),
  }),
]);

const maskSchema = z.strictObject({
  /** Column names (`email`) or table-qualified (`users.email`, `public.users.email`); globs allowed. */
  columns: z.array(z.string().min(1)).default([]),
  values: z.array(valuePatternSchema).default([]),
  /** What a masked column's value becomes. */
  replacement: z.string().default('****'),
});

const ruleSchema = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,80}$/, 'a rule name of letters, digits and _ . : -'),
    /** Resource names (globs); empty: every resource. */
    resources: z.array(z.string().min(1)).default([]),
    /** Identity conditions; each given one must match. Globs, case-insensitive. */
    logins: z.array(z.string().min(1)).default([]),
    subjects: z.array(z.string().min(1)).default([]),
    claims: z.record(z.string(), z.string()).default({}),
    /** Statement conditions: any of these classes; relation globs on schema.table; function globs. */
    classes: z.array(z.enum(STATEMENT_CLASSES)).default([]),
    relations: z.array(z.string().min(1)).default([]),
    functions: z.array(z.string().min(1)).default([]),
    /** The parser's node type of the top-level statement: DoStmt, CallStmt, CopyStmt … */
    commands: z.array(z.string().regex(/^[A-Z][A-Za-z]+$/, "a parser node type such as DoStmt")).default([]),
    action: z.enum(['allow', 'deny', 'review', 'mask']),
    /** Told to the client on deny, to the reviewer on review. */
    reason: z.string().min(1).optional(),
    mask: maskSchema.optional(),
  })
  .refine((rule) => rule.action !== 'mask' || rule.mask !== undefined, { message: 'a mask rule needs a `mask:` section', path: ['mask'] })
  .refine((rule) => rule.action === 'mask' || rule.mask === undefined, { message: '`mask:` belongs only to rules with action mask', path: ['mask'] });

/** `gateway.policy`: what agents may run, per resource and identity. */
export const policyConfigSchema = z
  .strictObject({
    /** Decision for a statement that no rule matches. */
    default: z.enum(['allow', 'deny', 'review']).default('allow'),
    /** Append gapwatch's safe defaults after your rules (deny COPY … PROGRAM, server-file COPY, DCL and admin functions; review DDL and DO blocks). */
    builtinRules: z.boolean().default(true),
    /** How long a statement waits for a human before it is refused. */
    reviewTimeoutSeconds: z.number().int().min(1).max(86_400).default(300),
    /**
     * The schemas unqualified names resolve to before a session changes search_path, for sessions
     * whose gateway did not learn them from the server: the PostgreSQL gateway asks the server at
     * login (PolicyEngine.startSession). The gateway follows SET search_path after that.
     */
    searchPath: z.array(z.string().min(1)).default(['public']),
    /** Settled and expired review files are removed from the data directory after this many days. */
    reviewRetentionDays: z.number().int().min(1).max(3650).default(30),
    /** When set, only these names may approve or deny (`gapwatch approve --as <name>`). */
    reviewers: z.array(z.string().min(1)).default([]),
    /**
     * Value patterns redacted from what the journal records of every session (bind parameters),
     * in addition to the value patterns of the mask rules that apply to the session.
     */
    auditRedact: z.array(valuePatternSchema).default(['card_number']),
    /** Checked in order; the first rule that matches a statement decides it. */
    rules: z.array(ruleSchema).default([]),
  })
  .superRefine((policy, ctx) => {
    const seen = new Set<string>();
    policy.rules.forEach((rule, index) => {
      if (seen.has(rule.name)) ctx.addIssue({ code: 'custom', message: `rule names must be unique (${rule.name} repeats)`, path: ['rules', index, 'name'], input: rule.name });
      seen.add(rule.name);
    });
  });

export type PolicyConfig = z.infer<typeof policyConfigSchema>;
export type PolicyRuleConfig = PolicyConfig['rules'][number];
export type MaskConfig = NonNullable<PolicyRuleConfig['mask']>;
export type ValuePatternConfig = MaskConfig['values'][number];
