/**
 * `npm run chaos`: the long fault tier. Runs the chosen scenarios (test/chaos/scenarios.ts) one
 * after the other on this machine's embedded PostgreSQL under pgbench load and prints, per
 * scenario, iterations, lost / extra / mismatched / duplicated rows (every delivered event replayed
 * onto empty maps against the source) and recovery times.
 *
 *   npm run chaos -- [--scenario <name>]... [--iterations N] [--seed S] [--json]
 *
 * - --scenario: repeatable; default all (sigkill, pg-restart, walsender-kill, network, sink-outage,
 *   disk-full, slot-loss).
 * - --iterations: for every chosen scenario; default each scenario's own count (50, 20, 20, 20, 10,
 *   10, 10).
 * - --seed: the random moments and fault parameters; printed, so a run can be repeated.
 * - --json: one JSON document on stdout (progress goes to stderr).
 *
 * Exit 0 when every scenario that ran found 0 lost, extra, mismatched and duplicated rows; 1 when one
 * did not or failed; 2 on bad arguments.
 */
import '../harness/tmp.ts';
import { parseArgs } from 'node:util';
import { SCENARIOS, seeded } from './scenarios.ts';
import { summarize, table, type ScenarioSummary } from './report.ts';

function usage(message: string): never {
  process.stderr.write(`chaos: error: ${message}\n`);
  process.exit(2);
}

let flags;
try {
  flags = parseArgs({
    options: {
      scenario: { type: 'string', multiple: true },
      iterations: { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  }).values;
} catch (error) {
  usage(`${error instanceof Error ? error.message : String(error)} (see --help)`);
}
if (flags.help) {
  process.stdout.write(
    'usage: npm run chaos -- [--scenario <name>]... [--iterations N] [--seed S] [--json]\nscenarios:\n' +
      SCENARIOS.map((s) => `  ${s.name.padEnd(15)} ${String(s.defaultIterations).padStart(3)}  ${s.what}\n`).join(''),
  );
  process.exit(0);
}
const names = flags.scenario ?? SCENARIOS.map((s) => s.name);
for (const name of names)
  if (!SCENARIOS.some((s) => s.name === name))
    usage(`unknown scenario '${name}': choose from ${SCENARIOS.map((s) => s.name).join(', ')}`);
const iterations = flags.iterations === undefined ? undefined : Number(flags.iterations);
if (iterations !== undefined && (!Number.isInteger(iterations) || iterations < 1))
  usage(`--iterations must be a whole number of at least 1, not '${flags.iterations}'`);
const seed = flags.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(flags.seed);
if (!Number.isInteger(seed) || seed < 0) usage(`--seed must be a whole number, not '${flags.seed}'`);

const log = (line: string): void => void process.stderr.write(`${line}\n`);
log(`chaos: seed ${seed} (repeat with --seed ${seed})`);

/** Each scenario's own generator, so a subset of scenarios sees the same moments as the full run. */
function scenarioSeed(name: string): number {
  let h = seed;
  for (const c of name) h = (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0;
  return h;
}

const summaries: ScenarioSummary[] = [];
const empty = {
  lost: 0,
  extra: 0,
  expectedExtra: 0,
  mismatched: 0,
  duplicated: 0,
  events: 0,
  reconnected: 0,
  samples: [],
};
const none = { p50: undefined, p95: undefined, max: undefined };
for (const scenario of SCENARIOS.filter((s) => names.includes(s.name))) {
  const reason = scenario.unavailable();
  const base = {
    scenario: scenario.name,
    iterations: 0,
    ...empty,
    unplannedExits: [],
    recoveryMs: none,
    deliveredMs: none,
  };
  if (reason !== undefined) {
    log(`chaos: ${scenario.name}: SKIPPED: ${reason}`);
    summaries.push({ ...base, skipped: reason });
    continue;
  }
  const count = iterations ?? scenario.defaultIterations;
  log(`chaos: ${scenario.name}: ${count} iteration(s): ${scenario.what}`);
  const started = Date.now();
  try {
    const summary = summarize(await scenario.run(count, seeded(scenarioSeed(scenario.name)), log));
    summaries.push(summary);
    for (const line of summary.samples) log(`chaos: ${scenario.name}: difference: ${line}`);
    for (const line of summary.exitLines ?? []) log(`chaos: ${scenario.name}: pgcdc exited by itself: ${line}`);
    log(`chaos: ${scenario.name}: done in ${Math.round((Date.now() - started) / 1000)} s`);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    log(`chaos: ${scenario.name}: FAILED: ${message}`);
    summaries.push({ ...base, failed: message.split('\n')[0] ?? message });
  }
}

const bad = summaries.some((s) => s.failed !== undefined || s.lost + s.extra + s.mismatched + s.duplicated > 0);
if (flags.json) {
  process.stdout.write(`${JSON.stringify({ seed, scenarios: summaries }, null, 2)}\n`);
} else {
  process.stdout.write(`\nseed ${seed}\n\n${table(summaries)}\n`);
}
process.exit(bad ? 1 : 0);
