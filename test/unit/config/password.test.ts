/**
 * Password sources and connection defaults: libpq's password-file matching (wildcards, escapes,
 * comments, first match wins, the 0600 rule), the password file option, sslmode's default, and
 * the SSH flags turned into `source.ssh`.
 */
import '../../harness/tmp.ts'; // temporary files go under a per-process root, removed at exit
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../../src/config.ts';
import { resolveEndpoint } from '../../../src/postgres/connect.ts';
import { matchPassfile, passwordFromPassfile } from '../../../src/postgres/password.ts';
import { flagsToConfig } from '../../../src/cli/run-command.ts';
import { CdcError } from '../../../src/core/errors.ts';

const key = { host: 'db.example.com', port: 5432, database: 'shop', user: 'pgcdc' };

test('password file lines match field by field, * matches anything, the first match wins', () => {
  const text = [
    '# a comment line: db.example.com:5432:shop:pgcdc:commented',
    'other.example.com:5432:shop:pgcdc:wrong-host',
    'db.example.com:5433:*:*:wrong-port',
    'db.example.com:*:shop:pgcdc:first',
    '*:*:*:*:fallback',
  ].join('\n');
  assert.equal(matchPassfile(text, key), 'first');
  assert.equal(matchPassfile(text, { ...key, host: 'elsewhere' }), 'fallback');
  assert.equal(matchPassfile('db.example.com:5432:shop:other:x\n', key), undefined);
  assert.equal(matchPassfile('\r\n\ndb.example.com:5432:shop:pgcdc:crlf\r\n', key), 'crlf');
});

test('password file escapes: \\: and \\\\ in fields and in the password', () => {
  assert.equal(matchPassfile('db.example.com:5432:shop:pgcdc:p\\:a\\\\ss', key), 'p:a\\ss');
  assert.equal(matchPassfile('db.example.com:5432:we\\:ird:pgcdc:ok', { ...key, database: 'we:ird' }), 'ok');
  // libpq's quirk, kept: a field still being matched consumes an unescaped colon that the value has.
  assert.equal(matchPassfile('db.example.com:5432:we:ird:pgcdc:also', { ...key, database: 'we:ird' }), 'also');
  assert.equal(matchPassfile('db.example.com:5432:we:pgcdc:no', { ...key, database: 'we:ird' }), undefined);
  // A password ends at an unescaped colon, as in libpq.
  assert.equal(matchPassfile('*:*:*:*:abc:def', key), 'abc');
  // "*" is a wildcard only as a whole field; a field "*x" is literal.
  assert.equal(matchPassfile('*x:*:*:*:lit', key), undefined);
});

test("the password file is ignored unless only its owner can read it (libpq's 0600 rule)", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-pgpass-'));
  const file = path.join(dir, 'pgpass');
  await writeFile(file, '*:*:*:*:from-file\n');
  await chmod(file, 0o644);
  const loose = passwordFromPassfile(key, { PGPASSFILE: file });
  assert.equal(loose.password, undefined);
  assert.match(loose.password === undefined ? loose.reason : '', /group or others can read it \(run chmod 0600/);
  await chmod(file, 0o600);
  assert.equal(passwordFromPassfile(key, { PGPASSFILE: file }).password, 'from-file');
  assert.equal(passwordFromPassfile(key, { HOME: dir }).password, undefined); // ~/.pgpass is looked up under HOME
  await writeFile(path.join(dir, '.pgpass'), 'db.example.com:5432:shop:pgcdc:home\n', { mode: 0o600 });
  assert.equal(passwordFromPassfile(key, { HOME: dir }).password, 'home');
  assert.equal(passwordFromPassfile(key, { PGPASSFILE: dir }).password, undefined); // a directory is not a plain file
});

test(
  'sslmode defaults to require; source.passwordFile is read; ' + 'password and passwordFile together are refused',
  async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'pgcdc-pwfile-'));
    const file = path.join(dir, 'pw');
    await writeFile(file, 'canary-file-pw\nignored second line\n', { mode: 0o600 });
    const endpoint = resolveEndpoint(
      parseConfig({ source: { url: 'postgres://u:urlpw@h/db', passwordFile: file } }).source,
      { PGPASSWORD: 'envpw' },
    );
    assert.equal(endpoint.sslmode, 'require');
    assert.equal(endpoint.password, 'canary-file-pw');
    assert.equal(
      resolveEndpoint(parseConfig({ source: { url: 'postgres://u:urlpw@h/db' } }).source, { PGPASSWORD: 'envpw' })
        .password,
      'urlpw',
    );
    assert.equal(resolveEndpoint(parseConfig({}).source, { PGSSLMODE: 'disable' }).sslmode, 'disable');
    assert.throws(
      () => resolveEndpoint(parseConfig({ source: { password: 'x', passwordFile: file } }).source, {}),
      (e: unknown) => e instanceof CdcError && /both set/.test(e.message),
    );
    assert.throws(
      () => resolveEndpoint(parseConfig({ source: { passwordFile: path.join(dir, 'missing') } }).source, {}),
      /cannot read the password file/,
    );
  },
);

test('SSH flags become source.ssh; --ssh-host takes host:port; keepalives and TOFU keep their defaults', () => {
  const config = parseConfig(
    flagsToConfig({
      sshHost: 'bastion.example.com:2222',
      sshUser: 'me',
      sshKey: '/keys/id',
      sshHostKey: 'SHA256:abc',
      passwordFile: '/pw',
    }),
  );
  assert.equal(config.source.passwordFile, '/pw');
  assert.deepEqual(
    [
      config.source.ssh?.host,
      config.source.ssh?.port,
      config.source.ssh?.user,
      config.source.ssh?.privateKeyFile,
      config.source.ssh?.hostKey,
      config.source.ssh?.trustOnFirstUse,
    ],
    ['bastion.example.com', 2222, 'me', '/keys/id', 'SHA256:abc', false],
  );
  assert.equal(parseConfig(flagsToConfig({ sshHost: 'b', sshUser: 'me', sshKey: '/k' })).source.ssh?.port, 22);
  assert.equal(parseConfig(flagsToConfig({})).source.ssh, undefined);
  assert.throws(() => parseConfig(flagsToConfig({ sshUser: 'me' })), /source\.ssh\.host/);
  assert.throws(() => flagsToConfig({ sshHost: 'b:99999' }), /--ssh-host/);
});
