/**
 * A Dockerfile's build steps as a shell script that runs in a plain folder: what the deploy test
 * uses to prove that deploy/Dockerfile's commands work, on machines that have no Docker.
 *
 * The image's file system is a folder (`root`): WORKDIR, COPY destinations and absolute paths in
 * ENV values are placed under it; COPY sources come from the build context, or with `--from` from
 * an earlier stage's files (one file system here: stages share `root`, whose paths do not collide in
 * deploy/Dockerfile). RUN lines run with bash in their WORKDIR. FROM, USER, VOLUME, EXPOSE,
 * HEALTHCHECK, ENTRYPOINT and CMD do not change the files: ENTRYPOINT and CMD are returned for the
 * test to run. Only the instructions deploy/Dockerfile uses are understood; any other is refused,
 * so a new one cannot pass unnoticed.
 */
import path from 'node:path';

export interface DockerfileScript {
  /** The bash script (set -euo pipefail) performing every build step under `root`. */
  readonly script: string;
  /** The final ENTRYPOINT and CMD (exec form), as written. */
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  /** The final stage's ENV, with paths placed under `root` (PATH includes the caller's $PATH). */
  readonly env: Readonly<Record<string, string>>;
  /** The final WORKDIR, under `root`. */
  readonly workdir: string;
}

/** Single-quotes `value` for bash. */
function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Logical lines: comments dropped, backslash continuations joined. */
function instructions(text: string): string[] {
  const lines: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (pending === '' && (line.trim() === '' || line.trimStart().startsWith('#'))) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    lines.push((pending + line).trim());
    pending = '';
  }
  if (pending !== '') lines.push(pending.trim());
  return lines;
}

/** The exec form `["a", "b"]` of ENTRYPOINT, CMD. */
function execForm(args: string, instruction: string): string[] {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((a): a is string => typeof a === 'string'))
    throw new Error(`${instruction} must use the exec form ["...", ...]: ${args}`);
  return parsed;
}

/** Translates the Dockerfile `text` whose build context is `context` into a script under `root`. */
export function dockerfileScript(text: string, context: string, root: string): DockerfileScript {
  const under = (p: string): string => path.join(root, p);
  const out = ['set -euo pipefail'];
  let workdir = root;
  let entrypoint: string[] = [];
  let cmd: string[] = [];
  const env: Record<string, string> = {};
  for (const line of instructions(text)) {
    const match = /^(\S+)\s+(.*)$/.exec(line);
    if (match === null) throw new Error(`unreadable Dockerfile line: ${line}`);
    const instruction = match[1]!.toUpperCase();
    const args = match[2]!;
    switch (instruction) {
      case 'FROM':
        // A new stage starts in / with no ENV of the previous one.
        workdir = root;
        for (const key of Object.keys(env)) delete env[key];
        break;
      case 'WORKDIR':
        workdir = path.isAbsolute(args) ? under(args) : path.join(workdir, args);
        out.push(`mkdir -p ${shellQuote(workdir)}`);
        break;
      case 'COPY': {
        const words = args.split(/\s+/);
        const from = words[0]!.startsWith('--from=') ? words.shift() : undefined;
        const dest = words.pop()!;
        const target = path.isAbsolute(dest) ? under(dest) : path.join(workdir, dest);
        out.push(`mkdir -p ${shellQuote(dest.endsWith('/') ? target : path.dirname(target))}`);
        for (const source of words) {
          const origin = from === undefined ? path.join(context, source) : under(source);
          out.push(`cp -R ${shellQuote(origin)} ${shellQuote(target)}`);
        }
        break;
      }
      case 'RUN':
        out.push(`(cd ${shellQuote(workdir)} && ${args})`);
        break;
      case 'ENV': {
        const eq = args.indexOf('=');
        if (eq < 1) throw new Error(`ENV must be KEY=value: ${line}`);
        const key = args.slice(0, eq);
        const value = args
          .slice(eq + 1)
          .split(':')
          .map((part) => (path.isAbsolute(part) ? under(part) : part))
          .join(':');
        env[key] = value;
        out.push(`export ${key}=${value.replace(/\$PATH/g, '"$PATH"')}`);
        break;
      }
      case 'ENTRYPOINT':
        entrypoint = execForm(args, instruction);
        break;
      case 'CMD':
        cmd = execForm(args, instruction);
        break;
      case 'USER':
      case 'VOLUME':
      case 'EXPOSE':
      case 'HEALTHCHECK':
        break;
      default:
        throw new Error(`the deploy test does not know the Dockerfile instruction ${instruction}: teach it first`);
    }
  }
  const finalEnv = Object.fromEntries(
    Object.entries(env).map(([key, value]) => [key, value.replace(/\$PATH/g, process.env.PATH ?? '')]),
  );
  return { script: `${out.join('\n')}\n`, entrypoint, cmd, env: finalEnv, workdir };
}
