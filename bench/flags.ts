/** Shared by the benches: a flag that must be a positive whole number, or exit 2 saying so. */
export function wholeNumber(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`bench: ${flag} must be a positive whole number, not ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return n;
}
