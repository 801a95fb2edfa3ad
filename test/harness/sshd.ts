/**
 * A real sshd (Debian openssh-server) on loopback for tunnel tests: its own host key, a second
 * key to pin wrongly, a client key with a passphrase in authorized_keys and a stranger key that is
 * not. Stopped and deleted after the test file. Callers skip with `requireOrSkip(sshdAvailable())`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/embedded/cluster.ts';
import { onTeardown } from './pg.ts';
import { startDaemon } from './daemon.ts';

const SSHD = '/usr/sbin/sshd';

export function sshdAvailable(): boolean {
  return existsSync(SSHD);
}

export interface Sshd {
  port: number;
  dir: string;
  /** `[127.0.0.1]:port type base64`: the right host key as a known_hosts line. */
  knownHostsLine: string;
  /** The right host key's SHA256 fingerprint, as ssh-keygen -l prints it. */
  fingerprint: string;
  /** A different key, as a known_hosts line for this host: pinning it must be refused. */
  otherKeyLine: string;
  /** The other key's fingerprint. */
  otherFingerprint: string;
  /** Private key in authorized_keys, protected by the passphrase given to startSshd. */
  clientKey: string;
  /** Private key sshd does not authorise. */
  strangerKey: string;
  /** Everything sshd logged so far (LogLevel DEBUG1: one line per forwarded connection). */
  output(): string;
}

/** sshd authenticates the user running the test (root in CI). */
export const SSH_USER = userInfo().username;

export async function startSshd(passphrase: string): Promise<Sshd> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-sshd-'));
  onTeardown(() => rm(dir, { recursive: true, force: true }));
  const keygen = (file: string, secret = ''): void => {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', secret, '-C', 'pgcdc-test', '-f', path.join(dir, file)], {
      stdio: 'pipe',
    });
  };
  keygen('host_key');
  keygen('other_host_key');
  keygen('client_key', passphrase);
  keygen('stranger_key');
  await writeFile(path.join(dir, 'authorized_keys'), await readFile(path.join(dir, 'client_key.pub')));
  const port = await freePort();
  await writeFile(
    path.join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${path.join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'AllowTcpForwarding yes',
      'LogLevel DEBUG1',
      '',
    ].join('\n'),
  );
  if (userInfo().uid === 0) {
    // sshd's privilege separation directory (the package's service normally creates it).
    await mkdir('/run/sshd', { recursive: true });
    await chmod('/run/sshd', 0o755);
  }
  const daemon = await startDaemon('sshd', SSHD, ['-D', '-e', '-f', path.join(dir, 'sshd_config')], port);
  const pub = (await readFile(path.join(dir, 'host_key.pub'), 'utf8')).trim().split(/\s+/);
  const other = (await readFile(path.join(dir, 'other_host_key.pub'), 'utf8')).trim().split(/\s+/);
  const print = (file: string): string =>
    execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', path.join(dir, file)])
      .toString()
      .split(/\s+/)[1] ?? '';
  return {
    port,
    dir,
    knownHostsLine: `[127.0.0.1]:${port} ${pub[0]} ${pub[1]}`,
    fingerprint: print('host_key.pub'),
    otherKeyLine: `[127.0.0.1]:${port} ${other[0]} ${other[1]}`,
    otherFingerprint: print('other_host_key.pub'),
    clientKey: path.join(dir, 'client_key'),
    strangerKey: path.join(dir, 'stranger_key'),
    output: () => daemon.output(),
  };
}
