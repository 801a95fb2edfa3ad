// The pgcdc dashboard: polls the server's API every 2 s and draws what it answers. Plain DOM, no
// framework, nothing fetched from anywhere but this origin. Text goes in with textContent only.

const POLL_MS = 2000;
const TOKEN_KEY = 'pgcdc-token';
const SVG = 'http://www.w3.org/2000/svg';

const $ = (id) => document.getElementById(id);

/** Rows and time per table at the previous poll, for the snapshot rate and ETA. */
const lastProgress = new Map();
/** Retries seen since the page loaded, newest first. */
const retryHistory = [];
let lastRetries;
let knownTables = '';

class Unauthorized extends Error {}

async function api(path, init = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { ...(init.headers ?? {}) };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(path, { ...init, headers, cache: 'no-store' });
  if (response.status === 401) throw new Unauthorized();
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  return { status: response.status, body };
}

function formatBytes(n) {
  if (n === null || n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

function formatSeconds(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '-';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

function setText(id, text) {
  const element = $(id);
  if (element.textContent !== text) element.textContent = text;
}

function renderStatus(status) {
  const state = $('state');
  setText('state', status.state);
  state.dataset.state = status.state;
  setText('events-delivered', String(status.eventsDelivered));
  setText('acked-lsn', status.ackedLsn ?? '-');
  setText('retries', String(status.retries));
  const supervisor = status.supervisor;
  const next = supervisor?.nextDelayMs === undefined ? '' : `, next attempt in ${supervisor.nextDelayMs} ms`;
  setText('supervisor', supervisor ? `${supervisor.state}${next}` : '-');
  const fault = status.lastFault;
  setText('last-fault', fault ? `${fault.code}: ${fault.message} (${fault.at})` : 'none');
  if (lastRetries !== undefined && status.retries > lastRetries)
    retryHistory.unshift(
      `${new Date().toISOString()} retry ${status.retries}${fault ? ` after ${fault.code}: ${fault.message}` : ''}`,
    );
  lastRetries = status.retries;
  const list = $('retry-history');
  list.replaceChildren(
    ...retryHistory.slice(0, 20).map((line) => Object.assign(document.createElement('li'), { textContent: line })),
  );
  if (retryHistory.length === 0 && status.retries === 0)
    list.replaceChildren(
      Object.assign(document.createElement('li'), { textContent: 'no retry since the process started' }),
    );

  renderHealth(status.health);
  // The engine's list holds initial and incremental progress alike; a table an incremental snapshot
  // reads is shown once, from the stored incremental state.
  const incremental = status.incremental ?? [];
  const online = new Set(incremental.map((t) => t.table));
  renderSnapshot([
    ...(status.snapshot ?? []).filter((t) => !online.has(t.table)).map((t) => ({ ...t, kind: 'initial' })),
    ...incremental.map((t) => ({ ...t, kind: 'incremental' })),
  ]);
}

function renderHealth(health) {
  const alerts = $('alerts');
  if (!health) {
    setText('slot-name', '-');
    setText('wal-status', 'unknown (no health monitor in this run)');
    setText('lag-now', '-');
    alerts.replaceChildren();
    setText('wal-text', 'unknown (no health monitor in this run)');
    return;
  }
  const { sample } = health;
  setText('slot-name', `${sample.slot}${sample.exists ? (sample.active ? ' (active)' : ' (inactive)') : ' (missing)'}`);
  setText('wal-status', sample.walStatus ?? 'unknown');
  $('wal-status').dataset.walStatus = sample.walStatus ?? 'unknown';
  setText('lag-now', `${formatBytes(sample.lagBytes)}, ${formatSeconds(sample.lagSeconds)}`);
  alerts.replaceChildren(
    ...health.alerts.map((alert) => {
      const item = document.createElement('li');
      item.className = `alert level-${alert.level}`;
      item.dataset.level = alert.level;
      item.textContent = `${alert.level.toUpperCase()} ${alert.name}: ${alert.message}`;
      return item;
    }),
  );
  const retained = sample.retainedWalBytes;
  const limit = sample.maxSlotWalKeepSizeBytes;
  const bar = $('wal-bar');
  const fill = $('wal-bar-fill');
  if (retained !== undefined && limit !== undefined && limit > 0) {
    const percent = Math.min(100, (100 * retained) / limit);
    fill.style.width = `${percent}%`;
    fill.dataset.level = percent >= 90 ? 'critical' : percent >= 70 ? 'warning' : 'ok';
    bar.setAttribute('aria-valuenow', percent.toFixed(0));
    setText(
      'wal-text',
      `${formatBytes(retained)} of max_slot_wal_keep_size ${formatBytes(limit)} (${percent.toFixed(1)}%)`,
    );
  } else {
    fill.style.width = '0%';
    bar.setAttribute('aria-valuenow', '0');
    const limitText = limit === undefined ? 'unlimited (-1) or unknown' : formatBytes(limit);
    setText('wal-text', `${formatBytes(retained)} retained; max_slot_wal_keep_size is ${limitText}`);
  }
}

function renderSnapshot(tables) {
  const now = Date.now();
  const rows = tables.map((t) => {
    const key = `${t.kind} ${t.table}`;
    const previous = lastProgress.get(key);
    let rate = previous?.rate;
    if (previous && now > previous.at && t.rows !== previous.rows)
      rate = ((t.rows - previous.rows) * 1000) / (now - previous.at);
    if (!previous || t.rows !== previous.rows) lastProgress.set(key, { rows: t.rows, at: now, rate });
    const row = document.createElement('tr');
    row.dataset.table = t.table;
    row.dataset.kind = t.kind;
    const percent = t.done ? 100 : t.total ? Math.min(100, (100 * t.rows) / t.total) : undefined;
    const eta = t.stopped
      ? 'stopped'
      : t.done
        ? 'done'
        : rate && t.total && t.total > t.rows
          ? formatSeconds((t.total - t.rows) / rate)
          : '-';
    const cells = [
      `${t.table} (${t.kind})`,
      `${t.rows} / ${t.total ?? '?'}`,
      percent === undefined ? '-' : `${percent.toFixed(0)}%`,
      rate === undefined ? '-' : `${Math.round(rate)} rows/s`,
      eta,
    ];
    for (const text of cells) row.append(Object.assign(document.createElement('td'), { textContent: text }));
    return row;
  });
  if (rows.length === 0) {
    const row = document.createElement('tr');
    row.append(Object.assign(document.createElement('td'), { textContent: 'no snapshot in this run', colSpan: 5 }));
    rows.push(row);
  }
  $('snapshot-rows').replaceChildren(...rows);
}

/** A line chart of `series` (arrays of {x, y}, y null for gaps) in an inline SVG. */
function lineChart(container, series, formatY) {
  const width = 900;
  const height = 200;
  const pad = { left: 64, right: 8, top: 8, bottom: 20 };
  const points = series.flatMap((s) => s.points.filter((p) => p.y !== null));
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('role', 'img');
  if (points.length === 0) {
    svg.setAttribute('aria-label', 'no data yet');
    const text = document.createElementNS(SVG, 'text');
    text.setAttribute('x', String(width / 2));
    text.setAttribute('y', String(height / 2));
    text.setAttribute('text-anchor', 'middle');
    text.textContent = 'no data yet';
    svg.append(text);
    container.replaceChildren(svg);
    return;
  }
  const xs = points.map((p) => p.x);
  const minX = Math.min(...xs);
  const maxX = Math.max(minX + 1, ...xs);
  const maxY = Math.max(1, ...points.map((p) => p.y));
  const sx = (x) => pad.left + ((x - minX) / (maxX - minX)) * (width - pad.left - pad.right);
  const sy = (y) => height - pad.bottom - (y / maxY) * (height - pad.top - pad.bottom);
  const axis = document.createElementNS(SVG, 'path');
  axis.setAttribute('d', `M${pad.left},${pad.top} V${height - pad.bottom} H${width - pad.right}`);
  axis.setAttribute('class', 'axis');
  svg.append(axis);
  const labels = [
    [pad.left - 4, pad.top + 10, 'end', formatY(maxY)],
    [pad.left - 4, height - pad.bottom, 'end', formatY(0)],
    [pad.left, height - 4, 'start', new Date(minX).toLocaleTimeString()],
    [width - pad.right, height - 4, 'end', new Date(maxX).toLocaleTimeString()],
  ];
  for (const [x, y, anchor, label] of labels) {
    const text = document.createElementNS(SVG, 'text');
    text.setAttribute('x', String(x));
    text.setAttribute('y', String(y));
    text.setAttribute('text-anchor', anchor);
    text.textContent = label;
    svg.append(text);
  }
  const described = [];
  series.forEach((s, index) => {
    let d = '';
    let pen = 'M';
    for (const p of s.points) {
      if (p.y === null) {
        pen = 'M';
        continue;
      }
      d += `${pen}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)} `;
      pen = 'L';
    }
    const path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', d);
    path.setAttribute('class', `line line-${index}`);
    svg.append(path);
    // A dot on the last point, so a series of one point shows too.
    const end = [...s.points].reverse().find((p) => p.y !== null);
    if (end) {
      const dot = document.createElementNS(SVG, 'circle');
      dot.setAttribute('cx', sx(end.x).toFixed(1));
      dot.setAttribute('cy', sy(end.y).toFixed(1));
      dot.setAttribute('r', '3');
      dot.setAttribute('class', `dot line-${index}`);
      svg.append(dot);
    }
    const last = [...s.points].reverse().find((p) => p.y !== null);
    described.push(`${s.name}: ${last ? formatY(last.y) : '-'} now`);
  });
  svg.setAttribute('aria-label', described.join('; '));
  const legend = document.createElement('p');
  legend.className = 'legend';
  legend.textContent = described.join(' · ');
  container.replaceChildren(svg, legend);
}

function renderHistory(history) {
  const points = history.points;
  const throughput = [];
  for (let i = 1; i < points.length; i++) {
    const seconds = (points[i].at - points[i - 1].at) / 1000;
    throughput.push({
      x: points[i].at,
      y: seconds > 0 ? Math.max(0, points[i].events - points[i - 1].events) / seconds : null,
    });
  }
  const latest = throughput.at(-1);
  setText('events-rate', latest && latest.y !== null ? latest.y.toFixed(1) : '-');
  lineChart($('chart-throughput'), [{ name: 'events/s', points: throughput }], (y) => y.toFixed(y < 10 ? 1 : 0));
  const haveHealth = points.some((p) => p.lagBytes !== null);
  const lagSeries = haveHealth
    ? [
        { name: 'slot lag', points: points.map((p) => ({ x: p.at, y: p.lagBytes })) },
        { name: 'retained WAL', points: points.map((p) => ({ x: p.at, y: p.retainedWalBytes })) },
      ]
    : [{ name: 'received, not yet acknowledged', points: points.map((p) => ({ x: p.at, y: p.unackedBytes })) }];
  lineChart($('chart-lag'), lagSeries, formatBytes);
}

function renderEvents(answer) {
  setText(
    'events-mode',
    answer.available
      ? answer.showValues
        ? '(values shown)'
        : '(keys only; values redacted)'
      : '(no event sampler in this run)',
  );
  // Newest first, one row each: when it was durable, table, op, key (and the value when shown).
  const rows = [...answer.events]
    .reverse()
    .slice(0, 20)
    .map((event) => {
      const row = document.createElement('tr');
      const written = event.writtenAt ? new Date(event.writtenAt).toLocaleTimeString() : '-';
      const cells = [
        written,
        event.table || '-',
        OP_NAMES[event.op] ?? event.op,
        JSON.stringify(event.key),
        event.lsn ?? '-',
      ];
      if (answer.showValues) cells.push(JSON.stringify(event.value ?? null));
      for (const text of cells) row.append(Object.assign(document.createElement('td'), { textContent: text }));
      return row;
    });
  $('events-value-head').hidden = !answer.showValues;
  $('recent-events').replaceChildren(...rows);
}

/** Debezium's op letters, spelled out. */
const OP_NAMES = { c: 'insert', u: 'update', d: 'delete', r: 'read', t: 'truncate' };

function renderTables(answer) {
  const names = answer.tables;
  const signature = names.join('\n');
  if (signature === knownTables && names.length > 0) return;
  knownTables = signature;
  const box = $('table-choices');
  if (names.length === 0) {
    box.textContent = answer.current ? 'this capture captures no table' : 'waiting for the capture to list its tables';
    return;
  }
  const checked = new Set([...box.querySelectorAll('input:checked')].map((input) => input.value));
  box.replaceChildren(
    ...names.map((name, index) => {
      const label = document.createElement('label');
      const input = document.createElement('input');
      input.type = 'checkbox';
      input.name = 'table';
      input.value = name;
      input.id = `table-${index}`;
      input.dataset.testid = `table-option`;
      input.checked = checked.has(name);
      label.append(input, ` ${name}`);
      return label;
    }),
  );
}

function showConnection(text, isError) {
  const element = $('connection');
  element.textContent = text;
  element.dataset.error = isError ? 'true' : 'false';
}

async function poll() {
  try {
    const [status, history, events, tables] = await Promise.all([
      api('/status'),
      api('/api/history'),
      api('/api/events'),
      api('/api/tables'),
    ]);
    $('token-form').hidden = true;
    if (status.status === 200) renderStatus(status.body);
    else setText('state', status.body.error ?? `HTTP ${status.status}`);
    if (history.status === 200) renderHistory(history.body);
    if (events.status === 200) renderEvents(events.body);
    if (tables.status === 200) renderTables(tables.body);
    showConnection(`updated ${new Date().toLocaleTimeString()}`, false);
  } catch (error) {
    if (error instanceof Unauthorized) {
      $('token-form').hidden = false;
      showConnection('this server requires a bearer token: enter it above', true);
    } else showConnection(`cannot reach pgcdc: ${error.message}`, true);
  }
}

async function followRequest(id, names) {
  for (let i = 0; i < 60; i++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const { body } = await api(`/api/snapshot/${encodeURIComponent(id)}`);
    if (body.state === 'pending') continue;
    $('snapshot-result').dataset.state = body.state;
    setText(
      'snapshot-result',
      body.state === 'taken'
        ? `request ${id}: taken by the capture; ${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} being read`
        : `request ${id}: ${body.detail ?? body.state}`,
    );
    return;
  }
}

async function requestSnapshot(event) {
  event.preventDefault();
  const result = $('snapshot-result');
  const tables = [...document.querySelectorAll('#table-choices input:checked')].map((input) => input.value);
  if (tables.length === 0) {
    result.dataset.state = 'error';
    setText('snapshot-result', 'choose at least one table');
    return;
  }
  try {
    const { status, body } = await api('/api/snapshot', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tables }),
    });
    if (status === 202) {
      result.dataset.state = 'pending';
      setText(
        'snapshot-result',
        `request ${body.request} for ${body.tables.join(', ')}: waiting for the capture to take it`,
      );
      void followRequest(body.request, body.tables);
    } else {
      result.dataset.state = 'error';
      setText('snapshot-result', `refused (${status}): ${body.error}`);
    }
  } catch (error) {
    result.dataset.state = 'error';
    setText(
      'snapshot-result',
      error instanceof Unauthorized ? 'refused: the token is missing or wrong' : `failed: ${error.message}`,
    );
  }
}

function start() {
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('token-input').value.trim());
    $('token-input').value = '';
    void poll();
  });
  $('snapshot-form').addEventListener('submit', (event) => void requestSnapshot(event));
  void poll();
  setInterval(() => void poll(), POLL_MS);
}

start();
