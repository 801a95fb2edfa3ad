/**
 * The HTTP reference client (bench/sinks/http.ts runs it as a child process): POSTs `events` synthetic
 * events, `perRequest` per JSON-array body, each about `eventBytes` long, one request at a time over one
 * keep-alive connection, each awaited for its 2xx.
 *
 *   node --import tsx bench/sinks/http-reference.ts <url> <events> <perRequest> <eventBytes>
 */
import http from 'node:http';

const [url = '', eventsText = '0', perRequestText = '1', eventBytesText = '100'] = process.argv.slice(2);
const events = Number(eventsText);
const perRequest = Number(perRequestText);
const eventBytes = Number(eventBytesText);

function event(n: number): string {
  const head = `{"id":"0/${n.toString(16)}:0","topic":"bench.public.bench","key":{"id":${n}},"value":{"pad":"`;
  const tail = '"}}';
  return head + 'x'.repeat(Math.max(0, eventBytes - head.length - tail.length)) + tail;
}

function body(first: number, count: number): Buffer {
  const lines: string[] = [];
  for (let n = first; n < first + count; n++) lines.push(event(n));
  return Buffer.from(`[${lines.join(',')}]`);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function post(payload: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
      },
      (response) => {
        response.resume();
        response.on('end', () =>
          response.statusCode !== undefined && response.statusCode < 300
            ? resolve()
            : reject(new Error(`status ${response.statusCode}`)),
        );
      },
    );
    request.on('error', reject);
    request.end(payload);
  });
}

// Bodies are built as the run goes, as pgcdc builds its own from each batch.
for (let sent = 0; sent < events; sent += perRequest) await post(body(sent, Math.min(perRequest, events - sent)));
agent.destroy();
