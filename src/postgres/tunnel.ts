/**
 * SSH tunnel to the source database (ssh2): a local listener on 127.0.0.1 whose connections are
 * forwarded through the SSH server to the database host. The returned endpoint points at the
 * local end and keeps the database's real name in `tlsHost`, so TLS verifies the right name and
 * checks judge the real host. Replication, snapshot and check connections all go through
 * `openConnection` with that endpoint.
 *
 * The SSH server's host key must be pinned (an OpenSSH known_hosts line or a SHA256 fingerprint);
 * an unknown key is refused, with its fingerprint, unless trust-on-first-use is asked for.
 * Secrets (password, private key, passphrase) never appear in messages.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { Client, type ConnectConfig } from 'ssh2';
import { CdcError } from '../core/errors.ts';
import type { SourceEndpoint } from './endpoint.ts';
import type { SshTunnelConfig } from './tunnel-config.ts';
import { LIVENESS_DEFAULTS } from './connect-config.ts';
import { readSecretFile } from './password.ts';

/** OpenSSH's fingerprint of a raw host key blob: `SHA256:` + unpadded base64 of its SHA-256. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key blobs (base64) or fingerprints a `hostKey` setting pins. */
function pinnedKeys(hostKey: string): { blobs: string[]; fingerprints: string[] } {
  const blobs: string[] = [];
  const fingerprints: string[] = [];
  for (const raw of hostKey.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (/^SHA256:/.test(line)) {
      fingerprints.push(line.replace(/=+$/, ''));
      continue;
    }
    // known_hosts: [marker] hosts keytype base64 [comment], or just keytype base64.
    const fields = line.split(/\s+/);
    const typeAt = fields.findIndex((f) => /^(ssh-|ecdsa-|sk-)/.test(f));
    const blob = typeAt >= 0 ? fields[typeAt + 1] : undefined;
    if (blob === undefined) {
      throw new CdcError(
        'CONFIG_INVALID',
        'source.ssh.hostKey is neither a known_hosts line nor a SHA256 fingerprint',
        {
          hint:
            'use the output of ssh-keyscan -p <port> <host> (one line) or the SHA256:... fingerprint from ' +
            'ssh-keygen -lf',
        },
      );
    }
    blobs.push(blob);
  }
  return { blobs, fingerprints };
}

export interface Tunnel {
  /** The endpoint to connect to: 127.0.0.1 and the local port, `tlsHost` the database's name. */
  readonly endpoint: SourceEndpoint;
  /** The SSH server's host key fingerprint, as seen. */
  readonly hostKeyFingerprint: string;
  /** True when the key was accepted only because trust-on-first-use was enabled. */
  readonly trustedOnFirstUse: boolean;
  /** Resolves when the SSH connection has ended (closed by us, or lost). */
  readonly closed: Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens the SSH connection and a local forwarder to `target.host:target.port` (as the SSH server
 * resolves it). Rejects with TUNNEL_FAILED on a refused or unknown host key, failed
 * authentication or an unreachable SSH server.
 */
export async function openTunnel(
  ssh: SshTunnelConfig,
  target: SourceEndpoint,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Tunnel> {
  const where = `${ssh.user}@${ssh.host}:${ssh.port}`;
  const pins = ssh.hostKey === undefined ? undefined : pinnedKeys(ssh.hostKey);
  let seen: Buffer | undefined;
  let refusal: CdcError | undefined;
  let tofu = false;
  const config: ConnectConfig = {
    host: ssh.host,
    port: ssh.port,
    username: ssh.user,
    keepaliveInterval: ssh.keepaliveIntervalMs,
    keepaliveCountMax: ssh.keepaliveCountMax,
    readyTimeout: ssh.readyTimeoutMs,
    hostVerifier: (key: Buffer): boolean => {
      seen = key;
      const print = fingerprint(key);
      if (pins) {
        if (pins.blobs.includes(key.toString('base64')) || pins.fingerprints.includes(print)) return true;
        refusal = new CdcError(
          'TUNNEL_FAILED',
          `the SSH host key of ` +
            (`${ssh.host}:${ssh.port} (${print}) does not match the pinned key: refusing to connect (possible ` +
              `man-in-the-middle)`),
          {
            hint:
              'if the server key really changed, verify the new fingerprint out of band and update ' +
              'source.ssh.hostKey',
          },
        );
        return false;
      }
      if (ssh.trustOnFirstUse) {
        tofu = true;
        return true;
      }
      refusal = new CdcError(
        'TUNNEL_FAILED',
        `the SSH host key of ${ssh.host}:${ssh.port} is not pinned (${print}): refusing to connect`,
        {
          hint:
            `verify the fingerprint with the server's administrator, then set source.ssh.hostKey: ` +
            `"${print}" (or trustOnFirstUse: true to accept it unverified)`,
        },
      );
      return false;
    },
  };
  const password =
    env.PGCDC_SSH_PASSWORD ??
    ssh.password ??
    (ssh.passwordFile === undefined ? undefined : readSecretFile(ssh.passwordFile, 'source.ssh.passwordFile'));
  const passphrase =
    env.PGCDC_SSH_PASSPHRASE ??
    ssh.passphrase ??
    (ssh.passphraseFile === undefined ? undefined : readSecretFile(ssh.passphraseFile, 'source.ssh.passphraseFile'));
  if (ssh.privateKeyFile !== undefined) {
    try {
      config.privateKey = readFileSync(ssh.privateKeyFile);
    } catch (cause) {
      throw new CdcError('CONFIG_INVALID', `cannot read the SSH private key ${ssh.privateKeyFile}`, {
        cause,
        hint: 'check source.ssh.privateKeyFile and its permissions',
      });
    }
    if (passphrase !== undefined) config.passphrase = passphrase;
  }
  if (password !== undefined) config.password = password;
  if (config.privateKey === undefined && password === undefined) {
    throw new CdcError(
      'CONFIG_INVALID',
      'source.ssh needs privateKeyFile (--ssh-key) or a password (PGCDC_SSH_PASSWORD or source.ssh.passwordFile)',
    );
  }

  const client = new Client();
  await new Promise<void>((resolve, reject) => {
    const fail = (error: Error): void => {
      client.removeListener('ready', ready);
      let secretFree = error.message;
      for (const secret of [password, passphrase]) if (secret) secretFree = secretFree.replaceAll(secret, '***');
      reject(
        refusal ??
          new CdcError(
            'TUNNEL_FAILED',
            /authentication/i.test(secretFree)
              ? `SSH authentication failed for ${where}`
              : `cannot open the SSH tunnel through ${where}: ${secretFree}`,
            {
              cause: error,
              retryable: !/authentication|parse|passphrase/i.test(secretFree),
              hint: /authentication/i.test(secretFree)
                ? 'check source.ssh.user and the key (authorized_keys) or password'
                : 'check source.ssh.host and port',
            },
          ),
      );
    };
    const ready = (): void => {
      client.removeListener('error', fail);
      resolve();
    };
    client.once('ready', ready);
    client.once('error', fail);
    try {
      // Our own socket, for TCP keepalives under the SSH ones (a dead path is noticed even while SSH is idle).
      const keepaliveMs = target.tcpKeepaliveMs ?? LIVENESS_DEFAULTS.tcpKeepaliveMs;
      if (keepaliveMs > 0) {
        const sock = net.connect({ host: ssh.host, port: ssh.port });
        sock.setKeepAlive(true, keepaliveMs);
        config.sock = sock;
      }
      client.connect(config);
    } catch (error) {
      fail(error instanceof Error ? error : new Error(String(error)));
    }
  });
  // Later SSH errors (keepalive timeout, server gone) surface on the forwarded sockets.
  client.on('error', () => undefined);

  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    client.forwardOut('127.0.0.1', socket.remotePort ?? 0, target.host, target.port, (error, stream) => {
      if (error) {
        socket.destroy(error);
        return;
      }
      socket.pipe(stream).pipe(socket);
      stream.once('close', () => socket.destroy());
      socket.once('close', () => stream.destroy());
      socket.on('error', () => stream.destroy());
    });
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    });
  });
  const closed = new Promise<void>((resolve) => {
    client.once('close', () => {
      for (const socket of sockets) socket.destroy();
      server.close();
      resolve();
    });
  });
  const key = seen ?? Buffer.alloc(0);
  return {
    endpoint: { ...target, host: '127.0.0.1', port, tlsHost: target.tlsHost ?? target.host },
    hostKeyFingerprint: fingerprint(key),
    trustedOnFirstUse: tofu,
    closed,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      client.end();
    },
  };
}

/** Where a tunnel's notices go (trust on first use); stderr unless a caller says otherwise. */
let notice: (line: string) => void = (line) => process.stderr.write(`pgcdc: warning: ${line}\n`);
export function setTunnelNotice(sink: (line: string) => void): void {
  notice = sink;
}

interface SharedTunnel {
  readonly tunnel: Promise<Tunnel>;
  users: number;
  /** Set once open (for `openTunnelFor`). */
  open?: Tunnel;
}

function sharedKey(ssh: SshTunnelConfig, target: SourceEndpoint): string {
  return JSON.stringify([ssh, target.host, target.port]);
}

/** The tunnel currently open for `target` through `ssh`, if any (to report its host key). */
export function openTunnelFor(ssh: SshTunnelConfig, target: SourceEndpoint): Tunnel | undefined {
  return shared.get(sharedKey(ssh, target))?.open;
}

/** Open tunnels by SSH settings and target: every connection to the same source shares one. */
const shared = new Map<string, SharedTunnel>();

/** One connection's use of a shared tunnel. */
export interface TunnelLease {
  readonly tunnel: Tunnel;
  /** Ends this use; the tunnel closes when its last user releases it. Idempotent. */
  release(): void;
}

/**
 * Opens (or joins) the tunnel for `target` through `ssh`. Replication, catalog, snapshot and check
 * connections to one source share a single SSH connection, so the host key is verified (and, with
 * trust-on-first-use, reported) once, and the SSH server sees one login instead of one per
 * snapshot worker. A tunnel that fails to open or is lost is forgotten, so the next user reopens it.
 */
export async function leaseTunnel(
  ssh: SshTunnelConfig,
  target: SourceEndpoint,
  env: NodeJS.ProcessEnv = process.env,
): Promise<TunnelLease> {
  const key = sharedKey(ssh, target);
  let entry = shared.get(key);
  if (entry === undefined) {
    const opening = openTunnel(ssh, target, env);
    const created: SharedTunnel = { tunnel: opening, users: 0 };
    entry = created;
    shared.set(key, created);
    const forget = (): void => {
      if (shared.get(key) === created) shared.delete(key);
    };
    opening.then((tunnel) => {
      created.open = tunnel;
      if (tunnel.trustedOnFirstUse) {
        notice(
          `trusting the SSH host key of ` +
            (`${ssh.host}:${ssh.port} on first use ` +
              (`(${tunnel.hostKeyFingerprint}): pin it with source.ssh.hostKey or --ssh-host-key ` +
                `"${tunnel.hostKeyFingerprint}"`)),
        );
      }
      void tunnel.closed.then(forget);
    }, forget);
  }
  entry.users++;
  const current = entry;
  let tunnel: Tunnel;
  try {
    tunnel = await current.tunnel;
  } catch (error) {
    current.users--;
    throw error;
  }
  let released = false;
  return {
    tunnel,
    release: () => {
      if (released) return;
      released = true;
      current.users--;
      if (current.users > 0) return;
      if (shared.get(key) === current) shared.delete(key);
      void tunnel.close().catch(() => undefined);
    },
  };
}
