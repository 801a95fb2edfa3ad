/**
 * Table names as people write them in flags and config: `schema.table`, double quotes keeping dots
 * and case, a bare name meaning schema public.
 */
import { CdcError } from '../core/errors.ts';

/** `public.orders` -> ['public', 'orders']; a bare name means schema public. Quoted parts keep dots. */
export function parseTableName(text: string): { schema: string; table: string } {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      if (quoted && text[i + 1] === '"') {
        current += '"';
        i++;
      } else quoted = !quoted;
    } else if (ch === '.' && !quoted) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  if (quoted || parts.some((p) => p.length === 0) || parts.length > 2) {
    throw new CdcError('CONFIG_INVALID', `table name ${JSON.stringify(text)} is not of the form schema.table`, {
      hint: 'write tables as schema.table, comma separated',
    });
  }
  return parts.length === 1
    ? { schema: 'public', table: parts[0] ?? '' }
    : { schema: parts[0] ?? '', table: parts[1] ?? '' };
}
