/**
 * The `source.ssh` config section: the SSH tunnel's own schema (tunnel.ts uses the parsed value). It
 * imports nothing of pgcdc, so postgres/connect-config.ts and src/config.ts can compose it without a cycle.
 */
import { z } from 'zod';

/** The `source.ssh` config section. Liveness of the tunnel itself: SSH keepalives, and TCP keepalives. */
export const sshTunnelSchema = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(22),
  user: z.string().min(1),
  /** Path of the private key file (OpenSSH or PEM). */
  privateKeyFile: z.string().min(1).optional(),
  /** Passphrase of the private key; prefer PGCDC_SSH_PASSPHRASE or `passphraseFile`. */
  passphrase: z.string().optional(),
  /** File whose first line is the private key's passphrase. */
  passphraseFile: z.string().min(1).optional(),
  /** Password authentication; prefer PGCDC_SSH_PASSWORD or `passwordFile`. */
  password: z.string().optional(),
  /** File whose first line is the SSH password. */
  passwordFile: z.string().min(1).optional(),
  /** The pinned host key: an OpenSSH known_hosts line (or its `type base64` part) or `SHA256:...`. */
  hostKey: z.string().min(1).optional(),
  /** Accept an unknown host key (its fingerprint is reported). Off by default. */
  trustOnFirstUse: z.boolean().default(false),
  keepaliveIntervalMs: z.number().int().min(0).default(15_000),
  keepaliveCountMax: z.number().int().min(1).default(4),
  readyTimeoutMs: z.number().int().positive().default(20_000),
});
export type SshTunnelConfig = z.infer<typeof sshTunnelSchema>;
