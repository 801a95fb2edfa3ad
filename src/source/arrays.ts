/**
 * Arrays: the server's array text (array_out) to a JSON array of the converted elements.
 *
 *   {1,2,3}                      [1,2,3]
 *   {{1,2},{3,4}}                [[1,2],[3,4]]          (one nesting level per dimension)
 *   {"a\"b",NULL,"NULL",""}      ["a\"b",null,"NULL",""]
 *   [0:1]={1,2}                  [1,2]                  (explicit lower bounds are dropped)
 *   {(3,4),(1,2);(7,8),(5,6)}    ["(3,4),(1,2)","(7,8),(5,6)"]   (box[]: ';' separates elements)
 *   {}                           []
 *
 * Grammar of array_out: an element is `NULL` (unquoted, a SQL NULL), a double-quoted string in
 * which `\` escapes the next character, or an unquoted run of characters up to the delimiter or
 * `}`. array_out quotes every element that is empty, is the word NULL, or contains a brace, quote,
 * backslash, the delimiter or whitespace, so unquoted text never holds those.
 */
import { invalidValue, type JsonEncoder } from './json-grammar.ts';

const OPEN = 123; // {
const CLOSE = 125; // }
const QUOTE = 34; // "
const BACKSLASH = 92; // \
/** PostgreSQL's MAXDIM: deeper text is not an array the server printed (and must not exhaust the stack). */
const MAX_DIMENSIONS = 6;

/**
 * An encoder for arrays whose elements `element` converts. `delimiter` is the element type's
 * pg_type.typdelim (',' for all but box). Elements are never arrays themselves (multi-dimensional
 * arrays are one type), so nested calls of the same encoder cannot happen and the parser's
 * cursor can live in the closure instead of an object allocated per value.
 */
export function arrayEncoder(element: JsonEncoder, delimiter: string, typeName: string): JsonEncoder {
  const delim = delimiter.charCodeAt(0);
  let text = '';
  let pos = 0;

  /** Parses the `{...}` at `pos` and returns it as a JSON array. */
  function dimension(depth: number): string {
    if (depth > MAX_DIMENSIONS) throw invalidValue(typeName, text, `more than ${MAX_DIMENSIONS} dimensions`);
    pos++; // the opening brace
    if (text.charCodeAt(pos) === CLOSE) {
      pos++;
      return '[]';
    }
    let out = '[';
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === OPEN) out += dimension(depth + 1);
      else if (c === QUOTE) out += element(quoted());
      else out += unquoted();
      const next = text.charCodeAt(pos++);
      if (next === CLOSE) return `${out}]`;
      if (next !== delim) throw invalidValue(typeName, text, `expected '${delimiter}' or '}' at ${pos - 1}`);
      out += ',';
    }
  }

  /** The unescaped content of the quoted element at `pos`. */
  function quoted(): string {
    const token = readQuoted(text, pos);
    if (token === undefined) throw invalidValue(typeName, text, 'unterminated quoted element');
    pos = token.end;
    return token.value;
  }

  /** The unquoted element at `pos`, converted, or null for NULL. */
  function unquoted(): string {
    const start = pos;
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === delim || c === CLOSE) break;
      if (c === OPEN || c === QUOTE || c === BACKSLASH || Number.isNaN(c))
        throw invalidValue(typeName, text, `unexpected character at ${pos}`);
      pos++;
    }
    if (pos === start) throw invalidValue(typeName, text, `empty element at ${pos}`);
    // array_in reads NULL case-insensitively; array_out always prints it quoted when it is data.
    if (pos - start === 4 && text.slice(start, pos).toUpperCase() === 'NULL') return 'null';
    return element(text.slice(start, pos));
  }

  return (input: string): string => {
    text = input;
    pos = 0;
    // "[lower:upper][...]=" precedes arrays whose lower bound is not 1. JSON arrays are plain
    // lists, so the bounds are checked for shape and dropped.
    if (input.charCodeAt(0) === 91 /* [ */) {
      const eq = input.indexOf('=');
      if (eq < 0 || !/^(\[-?\d+:-?\d+\])+$/.test(input.slice(0, eq)))
        throw invalidValue(typeName, input, 'malformed dimensions');
      pos = eq + 1;
    }
    if (input.charCodeAt(pos) !== OPEN) throw invalidValue(typeName, input, "expected '{'");
    try {
      const out = dimension(1);
      if (pos !== input.length) throw invalidValue(typeName, input, 'text after the closing brace');
      return out;
    } finally {
      text = ''; // do not keep a large value alive through the closure
    }
  };
}

/**
 * hstore (an extension type, recognised by name): `"k"=>"v", "n"=>NULL` to {"k":"v","n":null}.
 * hstore_out quotes every key and value and escapes `"` and `\` with a backslash; pairs are
 * separated by ", " and the empty hstore prints as the empty string.
 */
export function encodeHstore(text: string): string {
  const n = text.length;
  let pos = 0;
  let out = '{';
  const fail = (why: string): never => {
    throw invalidValue('hstore', text, why);
  };
  const string = (): string => {
    if (text.charCodeAt(pos) !== QUOTE) fail(`expected '"' at ${pos}`);
    const token = readQuoted(text, pos);
    if (token === undefined) return fail('unterminated string');
    pos = token.end;
    return token.value;
  };
  while (pos < n) {
    if (pos > 0) {
      if (!text.startsWith(', ', pos)) fail(`expected ', ' at ${pos}`);
      pos += 2;
    }
    const key = string();
    if (!text.startsWith('=>', pos)) fail(`expected '=>' at ${pos}`);
    pos += 2;
    let value = 'null';
    if (text.startsWith('NULL', pos)) pos += 4;
    else value = JSON.stringify(string());
    out += `${out.length > 1 ? ',' : ''}${JSON.stringify(key)}:${value}`;
  }
  return `${out}}`;
}

/**
 * The double-quoted, backslash-escaped token whose opening quote is at `open` (array elements and
 * hstore keys and values share this form): its content, and the index after the closing quote.
 * Undefined when the text ends before the closing quote.
 */
function readQuoted(text: string, open: number): { value: string; end: number } | undefined {
  let pos = open + 1;
  let value = '';
  let run = pos;
  for (;;) {
    const c = text.charCodeAt(pos);
    if (c === QUOTE) return { value: value + text.slice(run, pos), end: pos + 1 };
    if (c === BACKSLASH) {
      value += text.slice(run, pos);
      run = ++pos; // keep the escaped character, whatever it is
    } else if (Number.isNaN(c)) return undefined;
    pos++;
  }
}
