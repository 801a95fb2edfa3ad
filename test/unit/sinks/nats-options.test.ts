/**
 * The NATS sink's options and names, without a server: the schema's defaults and its path-named
 * errors, subjects made from topics (characters a subject cannot hold replaced), subject filters, the
 * default stream, the checkpoint key, and `--offsets nats` against another sink.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../src/config.ts';
import { CdcError } from '../../../src/core/errors.ts';
import { natsOptionsSchema } from '../../../src/sinks/nats/options.ts';
import {
  checkpointKey,
  defaultStreamName,
  defaultStreamSubjects,
  filterMatches,
  subjectFor,
  subjectOfTopic,
} from '../../../src/sinks/nats/subjects.ts';

function configError(input: unknown): string {
  try {
    parseConfig(input, 'f.yaml');
  } catch (error) {
    assert.ok(error instanceof CdcError);
    return error.message;
  }
  assert.fail('expected an error');
}

void describe('NATS sink options', () => {
  void it('fills the defaults; servers from a comma-separated string, host:port meaning nats://', () => {
    const options = natsOptionsSchema.parse({ kind: 'nats', servers: 'nats://a:4222, b:4223' });
    assert.deepEqual(options.servers, ['nats://a:4222', 'nats://b:4223']);
    assert.equal(options.subject, '{topic}');
    assert.deepEqual(options.stream, {
      create: true,
      storage: 'file',
      replicas: 1,
      duplicateWindowMs: 120_000,
      exclusive: true,
    });
    assert.equal(options.maxInFlight, 1024);
    assert.equal(options.offsetsBucket, 'pgcdc-offsets');
  });

  void it('names what is wrong: a URL with credentials, a secret written inline, a template without {topic}', () => {
    assert.match(
      configError({ sink: { kind: 'nats', servers: 'nats://u:p@h:4222' } }),
      /^f\.yaml: sink\.servers\.0: must be nats:\/\/host:port/,
    );
    assert.match(
      configError({ sink: { kind: 'nats', servers: 'h:1', auth: { user: 'u', password: 'inline' } } }),
      /^f\.yaml: sink\.auth: must be one of/,
    );
    assert.match(
      configError({ sink: { kind: 'nats', servers: 'h:1', subject: 'cdc.events' } }),
      /^f\.yaml: sink\.subject: must contain \{topic\}/,
    );
    assert.match(configError({ sink: { kind: 'nats' } }), /^f\.yaml: sink\.servers: is required/);
  });

  void it('--offsets naming another sink kind is refused; naming the running one keeps no file', () => {
    assert.match(
      configError({ sink: { kind: 'nats', servers: 'h:1' }, offsets: 'kafka' }),
      /--offsets kafka keeps the checkpoints in the kafka sink, but the sink is nats/,
    );
    assert.equal(parseConfig({ sink: { kind: 'nats', servers: 'h:1' }, offsets: 'nats' }).offsets, 'nats');
  });
});

void describe('NATS names', () => {
  void it('subjects keep the topic dots and replace what a subject cannot hold', () => {
    assert.equal(subjectOfTopic('shop.public.orders'), 'shop.public.orders');
    assert.equal(subjectOfTopic('shop.public.Order Items'), 'shop.public.Order_Items');
    assert.equal(subjectOfTopic('shop.a*b.c>d'), 'shop.a_b.c_d');
    assert.equal(subjectOfTopic('shop..x.'), 'shop._.x._');
    assert.equal(subjectOfTopic('shop.public.café'), 'shop.public.caf_');
    assert.equal(subjectFor('cdc.{topic}', 'shop.public.orders'), 'cdc.shop.public.orders');
  });

  void it('filters: * is one token, > one or more', () => {
    assert.ok(filterMatches('shop.>', 'shop.public.orders'));
    assert.ok(!filterMatches('shop.>', 'shop'));
    assert.ok(filterMatches('shop.*.orders', 'shop.public.orders'));
    assert.ok(!filterMatches('shop.*', 'shop.public.orders'));
    assert.ok(filterMatches('shop.public.orders', 'shop.public.orders'));
    assert.ok(!filterMatches('shop.public.orders', 'shop.public.order'));
  });

  void it('the default stream and its subjects come from the topic prefix', () => {
    const options = natsOptionsSchema.parse({ kind: 'nats', servers: 'h:1' });
    assert.equal(defaultStreamName('shop'), 'pgcdc-shop');
    assert.equal(defaultStreamName('my.db'), 'pgcdc-my_db');
    assert.deepEqual(defaultStreamSubjects(options, 'shop'), ['shop.>']);
    assert.deepEqual(defaultStreamSubjects({ ...options, subject: 'cdc.{topic}' }, 'shop'), ['cdc.shop.>']);
    assert.equal(defaultStreamSubjects({ ...options, subject: '{topic}.v1' }, 'shop'), undefined);
  });

  void it('the checkpoint key escapes what a KV key cannot hold, so captures never share one', () => {
    assert.equal(checkpointKey('shop', 'pgcdc_slot'), 'shop.pgcdc_slot');
    assert.equal(checkpointKey('my db', 's'), 'my=20db.s');
    assert.notEqual(checkpointKey('a.b', 'c'), checkpointKey('a', 'b.c'));
  });
});
