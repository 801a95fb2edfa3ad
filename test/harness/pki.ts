/**
 * A throwaway PKI for TLS tests (Debian's openssl): a CA, a server certificate for 127.0.0.1 and
 * localhost signed by it, and an unrelated CA whose trust must be refused. Valid for two days.
 * `issueCertificate` adds more leaves (a client certificate, a server certificate for another host,
 * one signed by the other CA) to the same directory.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

export interface TestPki {
  /** The CA that signed the server certificate (PEM). */
  readonly ca: string;
  /** A CA that signed nothing here. */
  readonly otherCa: string;
  /** The server certificate and its unencrypted key (PEM). */
  readonly cert: string;
  readonly key: string;
}

function openssl(dir: string): (...args: string[]) => void {
  return (...args) => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
}

/** Writes the PKI's files into `dir` (which must exist). */
export function makeTestPki(dir: string): TestPki {
  const ssl = openssl(dir);
  for (const name of ['ca', 'other-ca']) {
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=pgcdc test ${name}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
    );
  }
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr');
  writeFileSync(
    path.join(dir, 'san.ext'),
    'subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n',
  );
  ssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    'san.ext',
    '-out',
    'server.crt',
  );
  return {
    ca: path.join(dir, 'ca.crt'),
    otherCa: path.join(dir, 'other-ca.crt'),
    cert: path.join(dir, 'server.crt'),
    key: path.join(dir, 'server.key'),
  };
}

export interface IssuedCertificate {
  /** The certificate and its unencrypted key (PEM files). */
  readonly cert: string;
  readonly key: string;
}

/**
 * A leaf certificate `name` (files `<name>.crt`, `<name>.key` in `dir`, next to the PKI's), signed by
 * the PKI's CA or, with `signer: 'other-ca'`, by the CA that signed nothing else. `san` is its
 * subjectAltName (e.g. `DNS:elsewhere.test`); without it the certificate is a client certificate
 * (extendedKeyUsage clientAuth, no subjectAltName).
 */
export function issueCertificate(
  dir: string,
  name: string,
  options: { readonly san?: string; readonly signer?: 'ca' | 'other-ca' } = {},
): IssuedCertificate {
  const ssl = openssl(dir);
  const signer = options.signer ?? 'ca';
  ssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    `/CN=pgcdc test ${name}`,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
  );
  writeFileSync(
    path.join(dir, `${name}.ext`),
    (options.san === undefined ? 'extendedKeyUsage = clientAuth\n' : `subjectAltName = ${options.san}\n`) +
      'basicConstraints = CA:FALSE\n',
  );
  ssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${signer}.crt`,
    '-CAkey',
    `${signer}.key`,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.crt`,
  );
  return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
}

/** Whether the openssl program the PKI is made with is installed (Debian package openssl). */
export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
