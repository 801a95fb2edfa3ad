/**
 * SSH tunnel through a real sshd (Debian openssh-server) on loopback, with its own host key and
 * authorized_keys: query and replication connections go through it with the host key pinned (as a
 * known_hosts line or a SHA256 fingerprint); a wrong pinned key and an unknown key are refused with
 * the fingerprint; trust-on-first-use accepts only when asked; secrets never appear in messages.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { openConnection, resolveEndpoint, type SourceEndpoint } from '../../src/postgres/connect.ts';
import { openTunnel, openTunnelFor } from '../../src/postgres/tunnel.ts';
import { sshTunnelSchema, type SshTunnelConfig } from '../../src/postgres/tunnel-config.ts';
import { CdcError } from '../../src/core/errors.ts';
import { requireOrSkip, startCluster } from '../harness/pg.ts';
import { SSH_USER as USER, sshdAvailable, startSshd, type Sshd } from '../harness/sshd.ts';

const PASSPHRASE = 'canary-Ssh-0b7e42';

const skip = requireOrSkip(sshdAvailable(), 'sshd (Debian package openssh-server)');

let sshd: Sshd;
let target: SourceEndpoint;

before(async () => {
  if (skip) return;
  sshd = await startSshd(PASSPHRASE);
  const cluster = await startCluster({ password: 'pg-secret' });
  // The database as the SSH server sees it: its own loopback.
  target = {
    ...resolveEndpoint({ url: cluster.url('postgres'), connectTimeoutMs: 10_000 }, {}),
    host: '127.0.0.1',
    sslmode: 'disable',
  };
});

function ssh(overrides: Partial<SshTunnelConfig>): SshTunnelConfig {
  return sshTunnelSchema.parse({
    host: '127.0.0.1',
    port: sshd.port,
    user: USER,
    privateKeyFile: sshd.clientKey,
    passphrase: PASSPHRASE,
    ...overrides,
  });
}

async function refusal(config: SshTunnelConfig): Promise<CdcError> {
  try {
    const tunnel = await openTunnel(config, target, {});
    await tunnel.close();
  } catch (error) {
    assert.ok(error instanceof CdcError, String(error));
    assert.ok(
      !error.message.includes(PASSPHRASE) && !(error.hint ?? '').includes(PASSPHRASE),
      'the passphrase must never be printed',
    );
    return error;
  }
  assert.fail('the tunnel should have been refused');
}

test(
  'query and replication connections through the tunnel, host key pinned as a known_hosts line',
  { skip },
  async () => {
    const tunnel = await openTunnel(ssh({ hostKey: sshd.knownHostsLine }), target, {});
    try {
      assert.equal(tunnel.endpoint.host, '127.0.0.1');
      assert.notEqual(tunnel.endpoint.port, target.port);
      assert.equal(tunnel.endpoint.tlsHost, '127.0.0.1');
      assert.equal(tunnel.hostKeyFingerprint, sshd.fingerprint);
      assert.equal(tunnel.trustedOnFirstUse, false);
      const query = await openConnection(tunnel.endpoint, 'query');
      const { rows } = await query.query<{ port: string }>(`select current_setting('port') as port`);
      await query.end();
      assert.equal(Number(rows[0]?.port), target.port);
      const replication = await openConnection(tunnel.endpoint, 'replication');
      const identified = await replication.query<{ systemid: string }>('IDENTIFY_SYSTEM');
      await replication.end();
      assert.match(identified.rows[0]?.systemid ?? '', /^\d+$/);
    } finally {
      await tunnel.close();
    }
  },
);

test('host key pinned as a SHA256 fingerprint', { skip }, async () => {
  const tunnel = await openTunnel(ssh({ hostKey: sshd.fingerprint }), target, {});
  try {
    const client = await openConnection(tunnel.endpoint, 'query');
    await client.query('select 1');
    await client.end();
  } finally {
    await tunnel.close();
  }
});

test('a wrong pinned host key is refused, naming the fingerprint seen', { skip }, async () => {
  const error = await refusal(ssh({ hostKey: sshd.otherKeyLine }));
  assert.equal(error.code, 'TUNNEL_FAILED');
  assert.match(
    error.message,
    new RegExp(
      `host key of 127\\.0\\.0\\.1:${sshd.port} \\(${sshd.fingerprint.replace(/[+/]/g, '\\$&')}\\) does not ` +
        `match the pinned key`,
    ),
  );
});

test(
  'an unknown host key is refused unless trust-on-first-use is enabled; its fingerprint is printed',
  { skip },
  async () => {
    const error = await refusal(ssh({}));
    assert.match(error.message, /is not pinned/);
    assert.ok(error.message.includes(sshd.fingerprint), error.message);
    assert.ok((error.hint ?? '').includes(`hostKey: "${sshd.fingerprint}"`), error.hint);
    const tunnel = await openTunnel(ssh({ trustOnFirstUse: true }), target, {});
    try {
      assert.equal(tunnel.trustedOnFirstUse, true);
      assert.equal(tunnel.hostKeyFingerprint, sshd.fingerprint);
    } finally {
      await tunnel.close();
    }
  },
);

test('a key the server does not authorise fails authentication in one line, without secrets', { skip }, async () => {
  const error = await refusal(
    ssh({ hostKey: sshd.fingerprint, privateKeyFile: sshd.strangerKey, passphrase: undefined }),
  );
  assert.match(error.message, new RegExp(`^SSH authentication failed for ${USER}@127\\.0\\.0\\.1:\\d+$`));
  const wrongPassphrase = await refusal(ssh({ hostKey: sshd.fingerprint, passphrase: 'not-it' }));
  assert.equal(wrongPassphrase.code, 'TUNNEL_FAILED');
});

test(
  'openConnection with source.ssh: connections share one tunnel, closed when the last one ends',
  { skip },
  async () => {
    const config = ssh({ hostKey: sshd.fingerprint });
    const endpoint: SourceEndpoint = { ...target, ssh: config };
    const [query, replication] = await Promise.all([
      openConnection(endpoint, 'query'),
      openConnection(endpoint, 'replication'),
    ]);
    const tunnel = openTunnelFor(config, endpoint);
    assert.ok(tunnel, 'a tunnel is open');
    await query.end();
    assert.equal(openTunnelFor(config, endpoint), tunnel, 'still open for the replication connection');
    await replication.query('IDENTIFY_SYSTEM');
    await replication.end();
    await tunnel.closed;
    assert.equal(openTunnelFor(config, endpoint), undefined);
    // A wrong key fails the connection itself, naming the database as configured (not the local end).
    await assert.rejects(
      openConnection({ ...endpoint, ssh: ssh({ hostKey: sshd.otherKeyLine }) }, 'query'),
      /does not match the pinned key/,
    );
  },
);

test('keepalives are on by default', () => {
  const parsed = sshTunnelSchema.parse({ host: 'bastion', user: 'me', privateKeyFile: '/k' });
  assert.ok(parsed.keepaliveIntervalMs > 0 && parsed.keepaliveCountMax > 0);
  assert.equal(parsed.trustOnFirstUse, false);
});
