/**
 * Per-table shaping rules (docs/notes-shaping.md), compiled once at start: which rule a table gets
 * (the first in file order whose patterns match it), the hash salt (read from its file or
 * environment variable here, never logged), and topic templates. The serializers (json.ts,
 * row-writer.ts, flat.ts) turn a table's rule into precompiled fragments and column encoders when
 * the table's serializer is built; nothing here runs per event.
 */
import { readFileSync } from 'node:fs';
import { CdcError } from '../core/errors.ts';
import type { DroppableOp, MaskSetting, ShapingSetting } from './shaping-config.ts';

/** One rule as the serializers use it. */
export interface TableRule {
  /** `shaping.rules.<index>`: named in errors. */
  readonly path: string;
  readonly include: readonly string[] | undefined;
  readonly exclude: readonly string[];
  readonly mask: Readonly<Record<string, MaskSetting>>;
  readonly truncate: Readonly<Record<string, number>>;
  readonly drop: readonly DroppableOp[];
  readonly topic: string | undefined;
}

export interface TopicVariables {
  readonly prefix: string;
  readonly database: string;
  readonly schema: string;
  readonly table: string;
}

/** `{prefix}.{schema}.{table}` with the variables filled in (the template was checked by the config). */
export function renderTopic(template: string, variables: TopicVariables): string {
  return template.replace(/\{(prefix|database|schema|table)\}/g, (_, name: keyof TopicVariables) => variables[name]);
}

/** Whether a rule's table pattern (the `tables` grammar, selection/patterns.ts) names a table. */
export type TableMatcher = (schema: string, table: string) => boolean;
/** Compiles one entry of a rule's `tables` (given by the caller: selection/ is a later layer). */
export type CompileTablePattern = (text: string) => TableMatcher;

export class Shaping {
  /** The salt of hash masks; undefined when no salt is configured (then no rule hashes). */
  readonly salt: Buffer | undefined;
  private readonly rules: { readonly patterns: readonly TableMatcher[]; readonly rule: TableRule }[];
  /** Rule per `schema.table`, found once per table. */
  private readonly found = new Map<string, TableRule | null>();

  constructor(setting: ShapingSetting, salt: Buffer | undefined, compile: CompileTablePattern) {
    this.salt = salt;
    this.rules = setting.rules.map((r, index) => ({
      patterns: r.tables.map(compile),
      rule: {
        path: `shaping.rules.${index}`,
        include: r.include,
        exclude: r.exclude,
        mask: r.mask,
        truncate: r.truncate,
        drop: r.drop,
        topic: r.topic,
      },
    }));
  }

  /** The first rule (in file order) with a pattern matching the table; undefined when none does. */
  ruleFor(schema: string, table: string): TableRule | undefined {
    const name = JSON.stringify([schema, table]);
    let rule = this.found.get(name);
    if (rule === undefined) {
      const hit = this.rules.find((r) => r.patterns.some((matches) => matches(schema, table)));
      rule = hit?.rule ?? null;
      this.found.set(name, rule);
    }
    return rule ?? undefined;
  }
}

/**
 * The configured shaping, or undefined when there are no rules (then nothing is shaped and the
 * serializers take their unshaped paths). Reads the salt: CONFIG_INVALID naming the key when the
 * file cannot be read or the variable is unset or empty; the salt's value is never in a message.
 */
export function loadShaping(
  setting: ShapingSetting,
  compile: CompileTablePattern,
  env: NodeJS.ProcessEnv = process.env,
): Shaping | undefined {
  if (setting.rules.length === 0) return undefined;
  let salt: Buffer | undefined;
  if (setting.salt?.file !== undefined) {
    const file = setting.salt.file;
    try {
      salt = readFileSync(file);
    } catch (cause) {
      const reason = cause instanceof Error && 'code' in cause ? String(cause.code) : 'unreadable';
      throw new CdcError('CONFIG_INVALID', `shaping.salt.file: cannot read ${file} (${reason})`, {
        cause,
        hint: 'point shaping.salt.file at a readable file holding the salt',
      });
    }
    // An editor's or `echo`'s trailing newline is not part of the salt.
    const text = salt.toString('latin1');
    if (text.endsWith('\r\n')) salt = salt.subarray(0, salt.length - 2);
    else if (text.endsWith('\n')) salt = salt.subarray(0, salt.length - 1);
    if (salt.length === 0)
      throw new CdcError('CONFIG_INVALID', `shaping.salt.file: ${file} is empty`, {
        hint: 'write a long random salt into it, e.g. openssl rand -hex 32',
      });
  } else if (setting.salt?.env !== undefined) {
    const name = setting.salt.env;
    const value = env[name];
    if (value === undefined || value.length === 0)
      throw new CdcError('CONFIG_INVALID', `shaping.salt.env: the environment variable ${name} is not set or empty`, {
        hint: `export ${name} with the salt before starting pgcdc`,
      });
    salt = Buffer.from(value, 'utf8');
  }
  return new Shaping(setting, salt, compile);
}
