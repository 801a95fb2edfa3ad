/**
 * Connection flags shared by `run` and `check`: the password file and the SSH tunnel. Secrets are
 * never flags (a command line is visible to every user of the machine in ps and shell history):
 * the SSH password and key passphrase come from PGCDC_SSH_PASSWORD / PGCDC_SSH_PASSPHRASE or files.
 */
import type { Command } from 'commander';
import type { ConfigInput } from '../config.ts';
import { CdcError } from '../core/errors.ts';

export interface ConnectionFlags {
  passwordFile?: string;
  sshHost?: string;
  sshUser?: string;
  sshKey?: string;
  sshHostKey?: string;
  sshTrustOnFirstUse?: boolean;
  sshPasswordFile?: string;
  sshPassphraseFile?: string;
}

export function addConnectionOptions(command: Command): Command {
  return command
    .option(
      '--password-file <file>',
      'file whose first line is the database password (or PGPASSWORD, ~/.pgpass, PGPASSFILE)',
    )
    .option('--ssh-host <host[:port]>', 'reach the database through this SSH server (port 22 by default)')
    .option('--ssh-user <name>', 'SSH user')
    .option('--ssh-key <file>', 'SSH private key (its passphrase: PGCDC_SSH_PASSPHRASE or --ssh-passphrase-file)')
    .option(
      '--ssh-host-key <key>',
      "the SSH server's pinned host key: SHA256:... fingerprint or a known_hosts line (ssh-keyscan)",
    )
    .option(
      '--ssh-trust-on-first-use',
      'accept an unpinned SSH host key (its fingerprint is printed so you can pin it)',
    )
    .option('--ssh-password-file <file>', 'file holding the SSH password (or PGCDC_SSH_PASSWORD)')
    .option('--ssh-passphrase-file <file>', 'file holding the SSH key passphrase (or PGCDC_SSH_PASSPHRASE)');
}

function sshHostPort(value: string): { host: string; port: number | undefined } {
  const match = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(value);
  const host = match?.[1] ?? match?.[2];
  const port = match?.[3] === undefined ? undefined : Number(match[3]);
  if (host === undefined || (port !== undefined && (port < 1 || port > 65535))) {
    throw new CdcError('CONFIG_INVALID', `--ssh-host ${JSON.stringify(value)} is not host or host:port`, {
      hint: 'e.g. --ssh-host bastion.example.com:22',
    });
  }
  return { host, port };
}

/** The `source` entries these flags set (undefined entries leave the config file's values alone). */
export function connectionFlagsToSource(flags: ConnectionFlags): NonNullable<ConfigInput['source']> {
  const target = flags.sshHost === undefined ? { host: undefined, port: undefined } : sshHostPort(flags.sshHost);
  const anySsh = [
    flags.sshHost,
    flags.sshUser,
    flags.sshKey,
    flags.sshHostKey,
    flags.sshTrustOnFirstUse,
    flags.sshPasswordFile,
    flags.sshPassphraseFile,
  ].some((v) => v !== undefined);
  // The loose type lets partial flags merge onto a file's source.ssh; the schema validates the result.
  const ssh: Record<string, unknown> | undefined = anySsh
    ? {
        host: target.host,
        port: target.port,
        user: flags.sshUser,
        privateKeyFile: flags.sshKey,
        hostKey: flags.sshHostKey,
        trustOnFirstUse: flags.sshTrustOnFirstUse,
        passwordFile: flags.sshPasswordFile,
        passphraseFile: flags.sshPassphraseFile,
      }
    : undefined;
  return { passwordFile: flags.passwordFile, ssh } as NonNullable<ConfigInput['source']>;
}
