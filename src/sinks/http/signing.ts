/**
 * The request signature, Stripe-style: `X-Pgcdc-Signature: t=<unix seconds>,v1=<hex>` where the hex
 * is HMAC-SHA256, keyed with the shared secret, of `<t>.<body>` (the timestamp, a dot, the exact
 * body bytes). A receiver recomputes it over the raw body, compares in constant time, and rejects a
 * timestamp older than its tolerance (a replayed request). Each retry is signed again with a new
 * timestamp, so a request retried for hours is still fresh when it lands.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'X-Pgcdc-Signature';

/** The signature header's value for `body` sent at `unixSeconds`. */
export function signature(secret: Buffer, body: Buffer, unixSeconds: number): string {
  const hmac = createHmac('sha256', secret);
  hmac.update(`${unixSeconds}.`);
  hmac.update(body);
  return `t=${unixSeconds},v1=${hmac.digest('hex')}`;
}

/**
 * The receiver's check (docs and tests): the header is well-formed, one of its v1 values is the
 * HMAC of `<t>.<body>`, and `t` is within `toleranceSeconds` of `nowSeconds`.
 */
export function verifySignature(
  secret: Buffer | string,
  body: Buffer,
  header: string | undefined,
  toleranceSeconds = 300,
  nowSeconds = Math.floor(Date.now() / 1000),
): boolean {
  if (header === undefined) return false;
  let timestamp: number | undefined;
  const candidates: string[] = [];
  for (const part of header.split(',')) {
    const [name, value] = part.split('=', 2);
    if (name === 't' && value !== undefined && /^\d+$/.test(value)) timestamp = Number(value);
    else if (name === 'v1' && value !== undefined) candidates.push(value);
  }
  if (timestamp === undefined || Math.abs(nowSeconds - timestamp) > toleranceSeconds) return false;
  const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest();
  return candidates.some((candidate) => {
    const given = Buffer.from(candidate, 'hex');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}
