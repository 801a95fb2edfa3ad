/**
 * A batch's XADD commands as RESP bytes, built straight from the batch's slab: no JSON.parse, no
 * string per event. Per event:
 *
 *   XADD <key> [MAXLEN ~ <n>] * id <event id> op <op> event <the event line>
 *
 * The constant head up to `id` is encoded once per topic (`commandHead`); the id is the line's
 * leading `{"id":"<id>"`, the op the value's `"op":"<op>"` member (`"__op":"<op>"` with envelope.type
 * flat), found by scanning back from the line's end: envelope/json.ts puts only ts_ms, ts_us, ts_ns
 * and the transaction after it, flat.ts only __deleted, __table, __lsn and __ts_ms, and a JSON string
 * cannot hold the unescaped bytes `op":"`, so the first match from the end is the member. A delete
 * without a value (a flat tombstone) gets op `d` from its EventFlag; an event without an op member
 * (transaction metadata events) gets an empty op.
 *
 * Two passes over the batch: the first finds each event's id end and op in the line and sums the
 * command sizes (positions kept in reused typed arrays), the second copies into one buffer of
 * exactly that size, which goes to the socket in one write.
 */
import { EventFlag, type EventBatch } from '../batch.ts';
import { COLON, ID_START, QUOTE } from '../event-line.ts';

const LOWER_O = 0x6f;
const LOWER_P = 0x70;
const UNDERSCORE = 0x5f;
/** `op":"` is 5 bytes; the op's first byte follows. */
const OP_TAIL_LENGTH = 5;
const DELETE_OP = Buffer.from('d');

const CRLF = Buffer.from('\r\n');
const ID_THEN_OP = Buffer.from('\r\n$2\r\nop\r\n');
const OP_THEN_EVENT = Buffer.from('\r\n$5\r\nevent\r\n');

/** The bytes of `XADD <key> [MAXLEN ~ n] * id ` as RESP, with the array header for all arguments. */
export function commandHead(key: string, maxLen: number | undefined): Buffer {
  const args = ['XADD', key, ...(maxLen === undefined ? [] : ['MAXLEN', '~', String(maxLen)]), '*', 'id'];
  let head = `*${args.length + 5}\r\n`;
  for (const arg of args) head += `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`;
  return Buffer.from(head, 'utf8');
}

/** Decimal digits of a non-negative integer. */
function digits(value: number): number {
  let count = 1;
  for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) count++;
  return count;
}

/** Writes `value` in decimal at `at`; returns the position after it. */
function writeUint(out: Buffer, at: number, value: number): number {
  const end = at + digits(value);
  let rest = value;
  let i = end;
  do {
    const next = Math.floor(rest / 10);
    out[--i] = 0x30 + (rest - next * 10);
    rest = next;
  } while (rest > 0);
  return end;
}

/**
 * The start of the op's value in the line `data[start, end)` (end excludes the newline), or -1 when
 * the line has none: the last `"op":"` (the Debezium envelope) or `"__op":"` (envelope.type flat,
 * whose metadata fields follow the row) member, scanning back from the end.
 */
export function findOp(data: Buffer, start: number, end: number): number {
  // `op":"` preceded by `"` or by `"__`.
  for (let i = end - OP_TAIL_LENGTH - 1; i > start; i--) {
    if (
      data[i] === LOWER_O &&
      data[i + 1] === LOWER_P &&
      data[i + 2] === QUOTE &&
      data[i + 3] === COLON &&
      data[i + 4] === QUOTE &&
      (data[i - 1] === QUOTE ||
        (data[i - 1] === UNDERSCORE && data[i - 2] === UNDERSCORE && data[i - 3] === QUOTE && i - 3 >= start))
    )
      return i + OP_TAIL_LENGTH;
  }
  return -1;
}

/** Builds the XADD commands of batches; reuses its position arrays from batch to batch. */
export class EntryEncoder {
  private idEnds = new Uint32Array(1024);
  private opStarts = new Int32Array(1024);
  private opEnds = new Uint32Array(1024);

  /**
   * One buffer with an XADD per event of `batch`; `headOf(topicNumber)` gives the topic's command
   * head (commandHead). Throws RangeError on a line that does not start with `{"id":"`.
   */
  encode(batch: EventBatch, headOf: (topicNumber: number) => Buffer): Buffer {
    const count = batch.count;
    if (this.idEnds.length < count) {
      this.idEnds = new Uint32Array(count);
      this.opStarts = new Int32Array(count);
      this.opEnds = new Uint32Array(count);
    }
    const data = batch.data;
    let size = 0;
    for (let i = 0; i < count; i++) {
      const start = batch.start(i);
      const end = batch.end(i) - 1;
      if (data[start + ID_START - 1] !== QUOTE) throw new RangeError('an event line that does not start with its id');
      const idEnd = data.indexOf(QUOTE, start + ID_START);
      if (idEnd === -1 || idEnd >= end) throw new RangeError('an event line without the end of its id');
      const opStart = findOp(data, idEnd, end);
      const opEnd = opStart === -1 ? -1 : data.indexOf(QUOTE, opStart);
      this.idEnds[i] = idEnd;
      this.opStarts[i] = opEnd === -1 ? -1 : opStart;
      this.opEnds[i] = opEnd === -1 ? 0 : opEnd;
      const idLength = idEnd - start - ID_START;
      const opLength = opEnd === -1 ? (batch.flags(i) & EventFlag.DELETE ? 1 : 0) : opEnd - opStart;
      const lineLength = end - start;
      size +=
        headOf(batch.topicNumber(i)).length +
        1 +
        digits(idLength) +
        2 +
        idLength +
        ID_THEN_OP.length +
        1 +
        digits(opLength) +
        2 +
        opLength +
        OP_THEN_EVENT.length +
        1 +
        digits(lineLength) +
        2 +
        lineLength +
        CRLF.length;
    }
    const out = Buffer.allocUnsafe(size);
    let at = 0;
    for (let i = 0; i < count; i++) {
      const start = batch.start(i);
      const end = batch.end(i) - 1;
      at += headOf(batch.topicNumber(i)).copy(out, at);
      const idStart = start + ID_START;
      const idEnd = this.idEnds[i] as number;
      at = bulkOf(out, at, data, idStart, idEnd);
      at += ID_THEN_OP.copy(out, at);
      const opStart = this.opStarts[i] as number;
      if (opStart !== -1) at = bulkOf(out, at, data, opStart, this.opEnds[i] as number);
      else if (batch.flags(i) & EventFlag.DELETE) at = bulkOf(out, at, DELETE_OP, 0, 1);
      else at = bulkOf(out, at, data, 0, 0);
      at += OP_THEN_EVENT.copy(out, at);
      at = bulkOf(out, at, data, start, end);
      at += CRLF.copy(out, at);
    }
    return out;
  }
}

/** Writes `$<length>\r\n<data[from, to)>` at `at` (the closing CRLF is the caller's). */
function bulkOf(out: Buffer, at: number, data: Buffer, from: number, to: number): number {
  out[at++] = 0x24;
  at = writeUint(out, at, to - from);
  out[at++] = 0x0d;
  out[at++] = 0x0a;
  return at + data.copy(out, at, from, to);
}
