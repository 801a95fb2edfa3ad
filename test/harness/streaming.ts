/**
 * Clusters for protocol v2 streaming tests: logical_decoding_work_mem at its minimum (64kB), so any
 * transaction of more than a few hundred rows is streamed while it runs.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { EmbeddedCluster } from '../../src/embedded/cluster.ts';
import { assertTeardownPending, onTeardown, startCluster, type TestDatabase } from './pg.ts';

const clusters = new Map<number, Promise<EmbeddedCluster>>();

/** One streaming-ready cluster per major for the test file. */
export function streamingCluster(major: number): Promise<EmbeddedCluster> {
  let cluster = clusters.get(major);
  if (!cluster) {
    cluster = startCluster({ major, settings: { wal_sender_timeout: '10s', logical_decoding_work_mem: '64kB' } });
    clusters.set(major, cluster);
  }
  return cluster;
}

/** A fresh database on `cluster`, with a connected client closed after the file. */
export async function databaseOn(cluster: EmbeddedCluster): Promise<TestDatabase> {
  assertTeardownPending();
  const name = `t_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const sql = await connect(cluster.url(name));
  return { name, url: cluster.url(name), server: { major: cluster.major, url: (d) => cluster.url(d), cluster }, sql };
}

/** Another connection to the same database (for a transaction left open while others run). */
export async function connect(url: string): Promise<pg.Client> {
  assertTeardownPending();
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  onTeardown(() => client.end().catch(() => undefined));
  return client;
}
