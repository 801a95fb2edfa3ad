/**
 * Secrets and PEM files of the sink kinds' options, one way for all: a secret is never written in the
 * configuration or given as a flag, only named by its source, and its value is never printed (the
 * error lines name the file or the variable, never what they hold).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { CdcError } from '../core/errors.ts';

/** A secret's source: exactly one of a file (its content, without a trailing newline) or an environment variable. */
export const secretSourceSchema = z
  .strictObject({
    /** A file holding the secret (its content, without a trailing newline). */
    file: z.string().min(1).optional(),
    /** An environment variable holding the secret. */
    env: z.string().min(1).optional(),
  })
  .refine((secret) => (secret.file === undefined) !== (secret.env === undefined), {
    message: 'give exactly one of file or env (secrets are never written in the configuration)',
  });

export type SecretSource = z.infer<typeof secretSourceSchema>;

const errnoOf = (error: unknown): string | undefined => (error as NodeJS.ErrnoException).code;

/**
 * The secret's value. `what` names the option in messages (`sink.sasl.password`). With `oneLine`, the
 * value must be one non-empty line (it goes into a header); otherwise a file is read whole (a NATS
 * credentials file has several lines) without its trailing newline. CONFIG_INVALID when unset or
 * unreadable.
 */
export function readSecret(source: SecretSource, what: string, oneLine = false): string {
  if (source.env !== undefined) {
    const value = process.env[source.env];
    if (value === undefined || value === '')
      throw new CdcError('CONFIG_INVALID', `${what}: the environment variable ${source.env} is not set`, {
        hint: `export ${source.env} before starting pgcdc, or use file: instead`,
      });
    return value;
  }
  const file = source.file as string;
  let value: string;
  try {
    value = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    throw new CdcError('CONFIG_INVALID', `${what}: cannot read ${file} (${errnoOf(error)})`, {
      hint: 'check the path and its permissions',
      cause: error,
    });
  }
  if (oneLine && (value === '' || /[\r\n]/.test(value)))
    throw new CdcError('CONFIG_INVALID', `${what}: ${file} must hold one non-empty line`, {
      hint: 'write the value alone on the first line of the file',
    });
  return value;
}

/** A PEM file's bytes (a CA, a certificate, a key); `what` names it in messages (`sink.tls.ca`). */
export function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new CdcError('CONFIG_INVALID', `${what} ${file} cannot be read (${errnoOf(error)})`, {
      hint: 'check the path and its permissions',
      cause: error,
    });
  }
}

/**
 * The TLS fields every sink kind takes (a kind adds its own, such as keyPassphrase or serverName):
 * `z.strictObject({ ...tlsFileFields, ... }).refine(...certAndKeyTogether)`.
 */
export const tlsFileFields = {
  /** PEM file of the CA that signed the server's certificate (default: the system's CAs). */
  ca: z.string().min(1).optional(),
  /** Client certificate and key (PEM files) for mutual TLS. */
  cert: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
  /** Check that the certificate names the server's host (verify-full). Turning it off is insecure. */
  verifyHostname: z.boolean().default(true),
};

/** The refinement that a client certificate comes with its key. */
export const certAndKeyTogether = [
  (tls: { readonly cert?: string | undefined; readonly key?: string | undefined }): boolean =>
    (tls.cert === undefined) === (tls.key === undefined),
  { message: 'give both cert and key for a client certificate, or neither' },
] as const;
