/**
 * The preflight rules: pure functions from what was read off the server to problems with fixes.
 * No I/O here, so every rule is unit-tested on plain data. Fix texts carry SQL built with the
 * quoting helper, ready to paste.
 */
import type { Problem } from './problem.ts';
import type { PreflightInput } from './rule-input.ts';
import { poolerFromHost, roleRules, serverRules, slotRules, tlsRules } from './server-rules.ts';
import { failoverRules } from './failover-rules.ts';
import { retainedWalRules } from './retained-wal.ts';
import { generatedColumnRules, publicationRules, signalRules, tableRules } from './table-rules.ts';

export type { PreflightInput, PreflightMode } from './rule-input.ts';
export { poolerFromError, poolerFromHost, truncateNotDecoded } from './server-rules.ts';

/** Every rule over one input. */
export function evaluate(input: PreflightInput): Problem[] {
  const hosted = poolerFromHost(input.host);
  return [
    ...(hosted ? [hosted] : []),
    ...serverRules(input),
    ...roleRules(input),
    ...tlsRules(input),
    ...tableRules(input),
    ...generatedColumnRules(input),
    ...publicationRules(input),
    ...signalRules(input),
    ...slotRules(input),
    ...failoverRules(input),
    ...retainedWalRules(input.inactiveSlots?.slots, input.inactiveSlots?.thresholdBytes ?? 0),
  ];
}
