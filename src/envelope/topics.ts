/**
 * Topic names: every event pgcdc writes goes to a topic named here, and only here.
 *
 * A table's changes go to `<prefix>.<schema>.<table>`; the other event streams to
 * `<prefix>.message`, `<prefix>.transaction` and `<prefix>.schema_changes`. With `topic.naming:
 * database` every name gets the database in front: `<database>_<prefix>...`. The prefix is
 * `topic.prefix`, by default the database name (docs/events.md). A shaping rule's `topic` template
 * replaces a table's name (docs/notes-shaping.md).
 */
import type { EnvelopeType, FlatDeletes } from './shaping-config.ts';
import { renderTopic, type Shaping } from './shaping.ts';

export interface TopicNaming {
  readonly prefix: string;
  readonly database: string;
  readonly naming: 'prefix' | 'database';
  /**
   * How events are written (`envelope.format`, `toast.placeholder`); absent: json with pgcdc's
   * placeholder. It travels with the naming because both are fixed for a capture and reach every
   * serializer the same way.
   */
  readonly envelope?: EnvelopeSettings | undefined;
  /** Per-table shaping rules (`shaping`); absent: none. Its topic templates route tables here. */
  readonly shaping?: Shaping | undefined;
}

export interface EnvelopeSettings {
  /** json: the envelope as is; json-with-schema: key and value as `{"schema":...,"payload":...}` (schemas.ts). */
  readonly format: 'json' | 'json-with-schema';
  /** What stands for an unchanged TOAST value (`toast.placeholder`). */
  readonly unavailableValue: string;
  /** `envelope.type`; absent: debezium. */
  readonly type?: EnvelopeType | undefined;
  /** `envelope.deletes` under flat; absent: rewrite. */
  readonly deletes?: FlatDeletes | undefined;
}

/** The event streams that are not a table's: logical decoding messages, transaction metadata, schema changes. */
export type EventStream = 'message' | 'transaction' | 'schema_changes';

/** The topic of one table's changes, or of one of the other event streams. */
export function topicName(
  naming: TopicNaming,
  of: EventStream | { readonly schema: string; readonly table: string },
): string {
  if (typeof of !== 'string') {
    const template = naming.shaping?.ruleFor(of.schema, of.table)?.topic;
    if (template !== undefined)
      return renderTopic(template, {
        prefix: naming.prefix,
        database: naming.database,
        schema: of.schema,
        table: of.table,
      });
  }
  const base = typeof of === 'string' ? `${naming.prefix}.${of}` : `${naming.prefix}.${of.schema}.${of.table}`;
  return naming.naming === 'database' ? `${naming.database}_${base}` : base;
}
