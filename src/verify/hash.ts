/**
 * The row and key hashes `pgcdc verify` compares: a fast non-cryptographic 53-bit hash of a byte
 * range (two independent 32-bit multiply-xorshift lanes, 21 + 32 bits kept), so that it fits a
 * JavaScript number exactly and costs about a nanosecond a byte. Two different rows collide with a
 * probability of about 2^-53 per compared key: verify compares each key's own row hash, never sums
 * of many, so a difference goes unnoticed with that probability only.
 *
 * Not a defence against a forger: a sink an attacker writes to can be made to look equal. It
 * answers "did pgcdc deliver what the source holds", not "was the output tampered with".
 */

const M1 = 0x85ebca6b;
const M2 = 0xc2b2ae35;
const P1 = 0x9e3779b1;
const P2 = 0x27d4eb2f;
const TWO_POW_32 = 0x1_0000_0000;

/** 53-bit hash of `data[start, end)`. */
export function hashBytes(data: Uint8Array, start: number, end: number): number {
  let h1 = 0x12345678 ^ (end - start);
  let h2 = 0x9abcdef0 ^ Math.imul(end - start, P1);
  let i = start;
  // Four bytes at a time, then the rest byte by byte.
  for (; i + 4 <= end; i += 4) {
    const word =
      (data[i] as number) |
      ((data[i + 1] as number) << 8) |
      ((data[i + 2] as number) << 16) |
      ((data[i + 3] as number) << 24);
    h1 = Math.imul(h1 ^ word, P1);
    h1 ^= h1 >>> 15;
    h2 = Math.imul(h2 ^ word, P2);
    h2 ^= h2 >>> 13;
  }
  for (; i < end; i++) {
    const byte = data[i] as number;
    h1 = Math.imul(h1 ^ byte, P1);
    h2 = Math.imul(h2 ^ byte, P2);
  }
  h1 ^= h1 >>> 16;
  h1 = Math.imul(h1, M1);
  h1 ^= h1 >>> 13;
  h1 = Math.imul(h1, M2);
  h1 ^= h1 >>> 16;
  h2 ^= h2 >>> 16;
  h2 = Math.imul(h2, M2);
  h2 ^= h2 >>> 13;
  h2 = Math.imul(h2, M1);
  h2 ^= h2 >>> 16;
  return (h1 >>> 11) * TWO_POW_32 + (h2 >>> 0);
}
