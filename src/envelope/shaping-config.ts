/**
 * The configuration of event shaping (docs/notes-shaping.md): the `envelope.type`/`envelope.deletes`
 * values and the `shaping` section, validated with zod like the rest of src/config.ts, so errors
 * name the dotted path of the bad key (`shaping.rules.0.mask.email: ...`). Only zod here: config.ts
 * imports this module and adds the check of the table patterns (selection/ is a later layer).
 */
import { z } from 'zod';

/** debezium: the Debezium envelope (before/after/source/...); flat: the row plus `__` metadata fields. */
export const ENVELOPE_TYPES = ['debezium', 'flat'] as const;
export type EnvelopeType = (typeof ENVELOPE_TYPES)[number];
/** Deletes under `envelope.type: flat`: the old row with `__deleted: true`, or a null value. */
export const FLAT_DELETES = ['rewrite', 'tombstone'] as const;
export type FlatDeletes = (typeof FLAT_DELETES)[number];
/** Ops a rule may drop (snapshot reads are left out with `snapshot.skip`, messages with `messages.exclude`). */
export const DROPPABLE_OPS = ['c', 'u', 'd', 't'] as const;
export type DroppableOp = (typeof DROPPABLE_OPS)[number];
/** The variables of a topic template. */
export const TOPIC_VARIABLES = ['prefix', 'database', 'schema', 'table'] as const;

const columnName = z.string().min(1, 'must be a column name');

const VARIABLE_LIST = TOPIC_VARIABLES.map((v) => `{${v}}`).join(', ');
const topicTemplate = z
  .string()
  .min(1)
  .superRefine((template, ctx) => {
    for (const match of template.matchAll(/\{([^{}]*)\}/g)) {
      const name = match[1] ?? '';
      if (!(TOPIC_VARIABLES as readonly string[]).includes(name))
        ctx.addIssue({
          code: 'custom',
          message: `unknown variable {${name}}: a topic template may use ${VARIABLE_LIST}`,
        });
    }
    if (/[{}]/.test(template.replace(/\{[^{}]*\}/g, '')))
      ctx.addIssue({ code: 'custom', message: 'a { or } without its pair: variables are written {schema}' });
  });

/** `hash`: a salted SHA-256 of the value's JSON text (hex); `{fixed: text}`: that text instead of the value. */
const maskSchema = z.union([z.literal('hash'), z.strictObject({ fixed: z.string() })], {
  error: 'must be hash or {fixed: "<text>"}',
});
export type MaskSetting = z.infer<typeof maskSchema>;

export const shapingRuleSchema = z
  .strictObject({
    /** Table patterns (the `tables` grammar) or exact names this rule applies to. */
    tables: z.array(z.string().min(1)).min(1, 'must name at least one table or pattern'),
    /** The columns kept in the rows (table order); absent: every column. */
    include: z.array(columnName).min(1, 'must name at least one column (leave include out to keep all)').optional(),
    /** Columns left out of the rows (the key keeps its columns). */
    exclude: z.array(columnName).default([]),
    /** Per column: `hash` or `{fixed: "***"}`. */
    mask: z.record(columnName, maskSchema).default({}),
    /** Per column: the most characters (text) or bytes (bytea) a value keeps. */
    truncate: z.record(columnName, z.number().int().min(1).max(1_000_000_000)).default({}),
    /** Ops whose events are not delivered. */
    drop: z.array(z.enum(DROPPABLE_OPS)).default([]),
    /** The topic of the matched tables' events, e.g. `{prefix}.tenants.{table}`. */
    topic: topicTemplate.optional(),
  })
  .superRefine((rule, ctx) => {
    for (const column of Object.keys(rule.truncate))
      if (rule.mask[column] !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['truncate', column],
          message: `${column} is masked: a masked value is replaced whole, leave it out of truncate`,
        });
  });
export type ShapingRuleSetting = z.infer<typeof shapingRuleSchema>;

/** Where the hash salt comes from: never from the YAML itself, and never printed. */
const saltSchema = z
  .strictObject({
    /** A file holding the salt (one trailing newline is ignored). */
    file: z.string().min(1).optional(),
    /** An environment variable holding the salt. */
    env: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')
      .optional(),
  })
  .refine((salt) => (salt.file === undefined) !== (salt.env === undefined), {
    message: 'give exactly one of file or env (the salt itself never goes in the YAML file)',
  });
export type SaltSetting = z.infer<typeof saltSchema>;

/** The `shaping` section without its default (config.ts adds the pattern check, then the default). */
export const shapingObjectSchema = z
  .strictObject({
    salt: saltSchema.optional(),
    /** Tried in order: the first rule whose `tables` match a table is the only one applied to it. */
    rules: z.array(shapingRuleSchema).default([]),
  })
  .superRefine((shaping, ctx) => {
    if (shaping.salt !== undefined) return;
    shaping.rules.forEach((rule, index) => {
      for (const [column, mask] of Object.entries(rule.mask))
        if (mask === 'hash')
          ctx.addIssue({
            code: 'custom',
            path: ['rules', index, 'mask', column],
            message: 'hash needs a salt: set shaping.salt.file or shaping.salt.env',
          });
    });
  });
export type ShapingSetting = z.infer<typeof shapingObjectSchema>;
