/**
 * TEST ONLY. With PGCDC_TEST_PAUSE_BEFORE_STREAM=<file> in the environment, `run` stops between
 * its slot check and START_REPLICATION: it creates `<file>.waiting` and waits until `<file>`
 * exists. A test changes the slot in that window (test/integration/restart-safety.test.ts). Never
 * set it in production: a capture with it waits forever.
 */
import { access, writeFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';

export async function pauseBeforeStreamForTest(): Promise<void> {
  const file = process.env.PGCDC_TEST_PAUSE_BEFORE_STREAM;
  if (file === undefined || file === '') return;
  await writeFile(`${file}.waiting`, '');
  for (;;) {
    try {
      await access(file);
      return;
    } catch {
      await delay(50);
    }
  }
}
