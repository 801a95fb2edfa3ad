/**
 * A table's rows and keys as JSON fields, written straight into the batch (json.ts, flat.ts), with
 * the table's shaping rule (shaping.ts) compiled in once: the row's column list (include/exclude),
 * their `"name":` fragments, and per column at most one transform (a fixed mask's encoded bytes, a
 * hash mask, a truncation). An unshaped table has no column list and no transforms: its loop is the
 * one pgcdc always had. Nothing is allocated per event except a hash's digest.
 *
 * Keys: the event key always holds every key column (excluded from the row or not), so events stay
 * addressable and compacted topics keep working. A hash mask applies to the key too (joins and
 * uniqueness survive); a fixed mask on a key column is refused (every row would get the same key);
 * truncation never applies to the key.
 */
import * as crypto from 'node:crypto';
import { CdcError } from '../core/errors.ts';
import { UNCHANGED_TOAST, type TupleData } from '../protocol/messages.ts';
import { connect } from '../source/connect-schema.ts';
import type { ColumnSchema, TableSchema } from '../source/relations.ts';
import { OID } from '../source/type-oids.ts';
import { columnValueSchema, placeholderJson } from './schemas.ts';
import type { TableRule } from './shaping.ts';
import type { EnvelopeSettings } from './topics.ts';
import { copyFieldText, type CopyFields } from '../source/copy-row.ts';
import { copyPlan, writeCopyValue, type CopyPlan } from './copy-values.ts';

/**
 * A row to write: a decoded tuple (the stream), or a COPY text row in place (the initial
 * snapshot's fast path, source/copy-row.ts), which never holds unchanged TOAST.
 */
export type RowSource = TupleData | CopyFields;

/** Where serialized bytes go: implemented by EventBatchBuilder. */
export interface LineWriter {
  raw(bytes: Uint8Array): void;
  text(s: string): void;
  jsonString(s: string): void;
  uint(value: number): void;
  /** Direct writing (envelope/copy-values.ts): room for `bytes` more bytes, written from `offset`, then `advance`. */
  room(bytes: number): Buffer;
  readonly offset: number;
  advance(to: number): void;
}

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');
const NULL = bytes('null');
const OPEN_OBJECT = bytes('{');
const HIGH_SURROGATE_FIRST = 0xd800;
const HIGH_SURROGATE_LAST = 0xdbff;

/** What a column's values become. */
type ColumnTransform =
  | { readonly kind: 'fixed'; readonly json: Buffer }
  | { readonly kind: 'hash'; readonly salt: Salt }
  | { readonly kind: 'truncate'; readonly max: number; readonly bytea: boolean };

/** The first `max` code points of `text` (PostgreSQL's char_length counts code points too). */
export function truncateText(text: string, max: number): string {
  if (text.length <= max) return text;
  let at = 0;
  for (let count = 0; count < max && at < text.length; count++) {
    const c = text.charCodeAt(at);
    at += c >= HIGH_SURROGATE_FIRST && c <= HIGH_SURROGATE_LAST && at + 1 < text.length ? 2 : 1;
  }
  return at >= text.length ? text : text.slice(0, at);
}

/** The salt's bytes, and the same as text when they are UTF-8 (then one-shot hashing can take salt + value). */
interface Salt {
  readonly bytes: Buffer;
  readonly text: string | undefined;
}

/** `crypto.hash` (Node 20.12+): about three times faster than a Hash object per value. */
const oneShotHash = (crypto as { hash?: typeof crypto.hash }).hash;

function saltOf(bytes: Buffer): Salt {
  const text = bytes.toString('utf8');
  return { bytes, text: Buffer.from(text, 'utf8').equals(bytes) ? text : undefined };
}

/** hex(SHA-256(salt ‖ UTF-8 of the value's JSON text)): what a `hash` mask writes (as a JSON string). */
export function maskHash(salt: Buffer, json: string): string {
  return hashWith(saltOf(salt), json);
}

function hashWith(salt: Salt, json: string): string {
  if (oneShotHash !== undefined && salt.text !== undefined) return oneShotHash('sha256', salt.text + json, 'hex');
  return crypto.createHash('sha256').update(salt.bytes).update(json, 'utf8').digest('hex');
}

const fieldPrefix = (name: string, first: boolean): Buffer => bytes(`${first ? '{' : ','}${JSON.stringify(name)}:`);

export class RowWriter {
  readonly table: TableSchema;
  /** Indexes into `table.columns` of the row's columns; null: every column (no include/exclude). */
  private readonly rowIndexes: readonly number[] | null;
  /** `{"a":`, `,"b":`, ... per row position. */
  private readonly rowPrefixes: readonly Buffer[];
  private readonly keyPrefixes: readonly Buffer[];
  /** Per column index; null when no column of the table is masked or truncated. */
  private readonly transforms: readonly (ColumnTransform | undefined)[] | null;
  /** The same for the key: hash masks only. */
  private readonly keyTransforms: readonly (ColumnTransform | undefined)[] | null;
  /** Per column index: what stands for its unchanged TOAST value (placeholderJson). */
  private readonly placeholders: readonly Buffer[];
  /** The row's first field name (or `{` for a row without columns), written with the fragment before it. */
  readonly firstRowPrefix: Buffer;
  readonly firstKeyPrefix: Buffer;
  readonly rowColumnCount: number;
  /** `schemaTable` as the row shows it, for the Connect schemas: kept columns, masked ones as strings. */
  readonly rowView: TableSchema;
  /** `schemaTable` with masked key columns as strings, for the key schema. */
  readonly keyView: TableSchema;
  /** How COPY rows' values are written, per column (copy-values.ts). */
  private readonly copy: CopyPlan;

  /**
   * `schemaTable` is the whole table when `table` is a TOAST omit variant (columns left out): the
   * rule's column names are checked against it, and the schemas describe it.
   */
  constructor(
    table: TableSchema,
    schemaTable: TableSchema,
    rule: TableRule | undefined,
    salt: Buffer | undefined,
    settings: EnvelopeSettings,
  ) {
    this.table = table;
    if (rule !== undefined) checkRule(rule, schemaTable);
    const kept = (c: ColumnSchema): boolean =>
      rule === undefined ||
      ((rule.include === undefined || rule.include.includes(c.name)) && !rule.exclude.includes(c.name));
    const columns = table.columns;
    const all = columns.every(kept);
    this.rowIndexes = all ? null : columns.flatMap((c, i) => (kept(c) ? [i] : []));
    const rowColumns = this.rowIndexes === null ? columns : this.rowIndexes.map((i) => columns[i] as ColumnSchema);
    this.rowColumnCount = rowColumns.length;
    this.rowPrefixes = rowColumns.map((c, i) => fieldPrefix(c.name, i === 0));
    this.keyPrefixes = table.keyIndexes.map((index, i) => fieldPrefix(columns[index]?.name ?? '', i === 0));
    this.firstRowPrefix = this.rowPrefixes[0] ?? OPEN_OBJECT;
    this.firstKeyPrefix = this.keyPrefixes[0] ?? OPEN_OBJECT;

    const transform = (c: ColumnSchema): ColumnTransform | undefined => {
      const mask = rule?.mask[c.name];
      if (mask === 'hash') return { kind: 'hash', salt: saltOf(salt ?? Buffer.alloc(0)) };
      if (mask !== undefined) return { kind: 'fixed', json: bytes(JSON.stringify(mask.fixed)) };
      const max = rule?.truncate[c.name];
      return max === undefined ? undefined : { kind: 'truncate', max, bytea: c.typeOid === OID.bytea };
    };
    const transforms = columns.map(transform);
    this.transforms = transforms.some((t) => t !== undefined) ? transforms : null;
    const keyTransforms = columns.map((c, i) =>
      table.keyIndexes.includes(i) && rule?.mask[c.name] === 'hash' ? transforms[i] : undefined,
    );
    this.keyTransforms = keyTransforms.some((t) => t !== undefined) ? keyTransforms : null;
    this.copy = copyPlan(columns);

    // Masked values are strings whatever the column's type.
    const masked = (c: ColumnSchema): ColumnSchema =>
      rule?.mask[c.name] === undefined ? c : { ...c, valueSchema: connect('string') };
    this.placeholders = columns.map((c) => bytes(placeholderJson(settings, columnValueSchema(masked(c)))));
    const viewColumns = schemaTable.columns.map(masked);
    const viewKept = schemaTable.columns.flatMap((c, i) => (kept(c) ? [i] : []));
    this.keyView = { ...schemaTable, columns: viewColumns };
    this.rowView = {
      ...schemaTable,
      columns: viewKept.map((i) => viewColumns[i] as ColumnSchema),
      keyIndexes: schemaTable.keyIndexes.flatMap((k) => (viewKept.includes(k) ? [viewKept.indexOf(k)] : [])),
    };
  }

  /** The row's fields after its first name, without the closing brace. Returns whether a placeholder was written. */
  writeRow(w: LineWriter, row: RowSource): boolean {
    if (!Array.isArray(row)) return this.writeCopyFields(w, row, this.rowIndexes, this.rowPrefixes, this.transforms);
    return this.writeFields(w, row, this.rowIndexes, this.rowPrefixes, this.transforms, true);
  }

  /** The key's fields after its first name, without the closing brace (unchanged TOAST: null). */
  writeKey(w: LineWriter, row: RowSource): void {
    if (!Array.isArray(row)) this.writeCopyFields(w, row, this.table.keyIndexes, this.keyPrefixes, this.keyTransforms);
    else this.writeFields(w, row, this.table.keyIndexes, this.keyPrefixes, this.keyTransforms, false);
  }

  /** writeFields for a COPY row: values written from its bytes; a shaped row goes through a tuple. */
  private writeCopyFields(
    w: LineWriter,
    row: CopyFields,
    indexes: readonly number[] | null,
    prefixes: readonly Buffer[],
    transforms: readonly (ColumnTransform | undefined)[] | null,
  ): false {
    const columns = this.table.columns;
    if (transforms !== null) {
      const tuple: TupleData = columns.map((_, i) => copyFieldText(row, i));
      this.writeFields(w, tuple, indexes, prefixes, transforms, false);
      return false;
    }
    const n = indexes === null ? columns.length : indexes.length;
    for (let i = 0; i < n; i++) {
      const index = indexes === null ? i : (indexes[i] as number);
      if (i > 0) w.raw(prefixes[i] as Buffer);
      if ((row.starts[index] as number) < 0) w.raw(NULL);
      else writeCopyValue(w, row, index, columns[index] as ColumnSchema, this.copy);
    }
    return false;
  }

  /** The names of the row's columns that are unchanged TOAST in `tuple`. */
  unavailableNames(tuple: TupleData): string[] {
    const names: string[] = [];
    this.table.columns.forEach((c, i) => {
      if (tuple[i] === UNCHANGED_TOAST && (this.rowIndexes === null || this.rowIndexes.includes(i))) names.push(c.name);
    });
    return names;
  }

  private writeFields(
    w: LineWriter,
    tuple: TupleData,
    indexes: readonly number[] | null,
    prefixes: readonly Buffer[],
    transforms: readonly (ColumnTransform | undefined)[] | null,
    row: boolean,
  ): boolean {
    let placeholders = false;
    // The first field's name (or the lone `{` of an empty object) was written with the fragment before.
    const columns = this.table.columns;
    const n = indexes === null ? columns.length : indexes.length;
    for (let i = 0; i < n; i++) {
      const index = indexes === null ? i : (indexes[i] as number);
      if (i > 0) w.raw(prefixes[i] as Buffer);
      const value = tuple[index];
      if (value === null || value === undefined) w.raw(NULL);
      else if (value === UNCHANGED_TOAST) {
        w.raw(row ? (this.placeholders[index] as Buffer) : NULL);
        placeholders = true;
      } else if (transforms !== null && transforms[index] !== undefined)
        writeTransformed(w, value, columns[index] as ColumnSchema, transforms[index]);
      else if (typeof value === 'string') {
        const column = columns[index] as ColumnSchema;
        if (column.plainString) w.jsonString(value);
        else w.text(column.encode(value));
      } else w.text(JSON.stringify(value.toString('base64')));
    }
    return placeholders;
  }
}

/** The JSON text a value is written as without shaping. */
function jsonText(value: string | Buffer, column: ColumnSchema): string {
  if (typeof value !== 'string') return JSON.stringify(value.toString('base64'));
  return column.plainString ? JSON.stringify(value) : column.encode(value);
}

function writeTransformed(w: LineWriter, value: string | Buffer, column: ColumnSchema, t: ColumnTransform): void {
  switch (t.kind) {
    case 'fixed':
      w.raw(t.json);
      return;
    case 'hash':
      w.jsonString(hashWith(t.salt, jsonText(value, column)));
      return;
    case 'truncate':
      if (typeof value !== 'string') w.text(jsonText(value, column));
      // bytea text is `\x` and two hex digits a byte: keep the first `max` bytes.
      else if (t.bytea) w.text(column.encode(value.length > 2 + 2 * t.max ? value.slice(0, 2 + 2 * t.max) : value));
      else w.jsonString(truncateText(value, t.max));
  }
}

/**
 * Refuses what a rule cannot mean for this table, naming the rule's key: a column the table does
 * not have (a typo would leave a value unmasked), a fixed mask on a key column, a truncation of a
 * column that is not text or bytea.
 */
function checkRule(rule: TableRule, table: TableSchema): void {
  const name = `${table.schema}.${table.table}`;
  const byName = new Map(table.columns.map((c, i) => [c.name, { column: c, index: i }]));
  const fail = (key: string, message: string, hint: string): never => {
    throw new CdcError('CONFIG_INVALID', `${rule.path}.${key}: ${message}`, { hint });
  };
  const lists: [string, readonly string[]][] = [
    ['include', rule.include ?? []],
    ['exclude', rule.exclude],
    ['mask', Object.keys(rule.mask)],
    ['truncate', Object.keys(rule.truncate)],
  ];
  for (const [key, names] of lists)
    for (const column of names)
      if (!byName.has(column))
        fail(
          `${key}${key === 'mask' || key === 'truncate' ? `.${column}` : ''}`,
          `${name} has no column ${JSON.stringify(column)}`,
          "a rule may name only columns every table it matches has: fix the name or narrow the rule's tables",
        );
  for (const [column, mask] of Object.entries(rule.mask)) {
    const found = byName.get(column);
    if (mask !== 'hash' && found !== undefined && table.keyIndexes.includes(found.index))
      fail(
        `mask.${column}`,
        `${column} is a key column of ${name}: a fixed mask would give every row the same key`,
        'mask key columns with hash, which keeps keys unique and joinable',
      );
  }
  for (const column of Object.keys(rule.truncate)) {
    const found = byName.get(column)?.column;
    if (found !== undefined && !found.plainString && found.typeOid !== OID.bytea)
      fail(
        `truncate.${column}`,
        `${name}.${column} is not a text or bytea column`,
        'truncate applies to text-like (text, varchar, char) and bytea columns',
      );
  }
}

/** The precompiled fragments of a primary-key change's head, per table (json.ts and flat.ts keep them). */
export interface KeyChangeFragments {
  /** `","topic":"<topic>","key":` and the key's opening (schema wrapper, first key column's name). */
  readonly topicKeyOpen: Buffer;
  /** `}` closing the key (`}}` with its schema wrapper). */
  readonly keyClose: Buffer;
  /** `,"headers":{"<new-key header>":` and the first key column's name. */
  readonly newKeyHeaderOpen: Buffer;
  readonly oldKeyHeaderOpen: Buffer;
}

const HEADERS_CLOSE = Buffer.from('}}');

/**
 * The head of one of the two events of a primary-key change, the same in both envelopes: the id, the
 * topic, the key (the old one for the delete `d`, the new one for the create `c`) and a header naming
 * the other key. The caller writes the value after it.
 */
export function writeKeyChangeHead(
  w: LineWriter,
  rows: RowWriter,
  parts: KeyChangeFragments,
  op: 'd' | 'c',
  old: TupleData,
  row: TupleData,
  idOpen: Buffer,
  totalOrder: number,
): void {
  w.raw(idOpen);
  w.uint(totalOrder - 1);
  w.raw(parts.topicKeyOpen);
  rows.writeKey(w, op === 'd' ? old : row);
  w.raw(parts.keyClose);
  w.raw(op === 'd' ? parts.newKeyHeaderOpen : parts.oldKeyHeaderOpen);
  rows.writeKey(w, op === 'd' ? row : old);
  w.raw(HEADERS_CLOSE);
}
