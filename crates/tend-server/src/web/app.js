// tend's dashboard: keeps the server-rendered page current from
// GET /v1/events and acts through the documented JSON API. Our own code, no
// library, no build step. Every name and line goes into the page as text
// (textContent), never as HTML.
'use strict';
(() => {
  const $ = (s, r = document) => r.querySelector(s);
  const $$ = (s, r = document) => Array.from(r.querySelectorAll(s));
  const data = JSON.parse($('#data').textContent);
  // For tests and benchmarks: how many events the page has applied.
  const probe = (window.tend = { events: 0, last: null, ready: false });
  let logsOpen = false; // whether the log view has opened its stream

  // Server time = client time - skew (countdowns and uptimes).
  const skew = Date.now() - Date.parse(data.snapshot_time);
  const serverNow = () => Date.now() - skew;

  const UP = new Set(['starting', 'running', 'stopping']);
  const rows = new Map(); // name -> { tr, s: status, at: server ms of status }
  {
    const trs = new Map($$('tr.proc').map((tr) => [tr.dataset.name, tr]));
    const at = Date.parse(data.snapshot_time);
    for (const s of data.processes) {
      const tr = trs.get(s.name);
      if (tr) rows.set(s.name, { tr, s, at });
    }
  }

  const pad = (n) => String(n).padStart(2, '0');
  function dur(ms) {
    let s = Math.max(0, Math.floor(ms / 1000));
    const d = Math.floor(s / 86400); s %= 86400;
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    const hms = `${h}:${pad(m)}:${pad(s % 60)}`;
    return d ? `${d}d ${hms}` : hms;
  }
  const exitText = (e) => (!e ? '' : 'code' in e ? `code ${e.code}` : `SIG${e.signal}`);
  const healthText = (s) => (UP.has(s.state) ? `${s.ready ? 'ready' : 'not ready'}${s.health === 'unknown' ? '' : ` · ${s.health}`}` : '');
  function bytes(n) {
    const u = ['B', 'KiB', 'MiB', 'GiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
  }
  const cell = (tr, k) => tr.querySelector(`[data-k="${k}"]`);
  function set(el, text) { if (el && el.textContent !== text) el.textContent = text; }
  function title(el, text) { if (el && el.title !== text) el.title = text; }

  function timeCells(r) {
    const s = r.s, now = serverNow();
    set(cell(r.tr, 'uptime'), UP.has(s.state) && s.started_at ? dur(now - Date.parse(s.started_at)) : '');
    let next = '';
    if (s.state === 'backoff' && s.next_restart_in_ms != null) {
      next = `in ${Math.max(0, (r.at + s.next_restart_in_ms - now) / 1000).toFixed(1)} s`;
    }
    set(cell(r.tr, 'next'), next);
  }

  function render(r, old) {
    const s = r.s, tr = r.tr;
    const st = cell(tr, 'state');
    if (st.textContent !== s.state) {
      st.textContent = s.state;
      st.className = `st st-${s.state}`;
      tr.dataset.state = s.state;
      if (old) { tr.classList.remove('flash'); void tr.offsetWidth; tr.classList.add('flash'); }
    }
    set(cell(tr, 'pid'), UP.has(s.state) && s.pid != null ? String(s.pid) : '');
    set(cell(tr, 'restarts'), String(s.restarts));
    set(cell(tr, 'exit'), exitText(s.last_exit));
    set(cell(tr, 'health'), healthText(s));
    set(cell(tr, 'error'), s.error || s.waiting_for || '');
    set(cell(tr, 'origin'), s.origin === 'added' ? 'added' : '');
    if (!UP.has(s.state)) { set(cell(tr, 'cpu'), ''); set(cell(tr, 'mem'), ''); }
    timeCells(r);
  }

  // The place of a row's "added" tag (shown only when it says something).
  function originTag() {
    const tag = document.createElement('span');
    tag.className = 'tag'; tag.dataset.k = 'origin';
    tag.title = 'Added at run time, not in the config file: a restart of the daemon forgets it';
    return tag;
  }

  function button(act, label) {
    const b = document.createElement('button');
    b.dataset.act = act;
    b.textContent = label;
    return b;
  }

  // A row for a process the page did not have (added, reloaded).
  function addRow(s) {
    const tr = document.createElement('tr');
    tr.className = 'proc';
    tr.dataset.name = s.name;
    const td = (k, cls) => {
      const c = document.createElement('td');
      if (k) c.dataset.k = k;
      if (cls) c.className = cls;
      tr.appendChild(c);
      return c;
    };
    const selc = td(null, 'c-sel');
    const cb = document.createElement('input');
    cb.type = 'checkbox'; cb.className = 'sel'; cb.setAttribute('aria-label', `Select ${s.name}`);
    selc.appendChild(cb);
    const th = document.createElement('th');
    th.scope = 'row'; th.className = 'name';
    const a = document.createElement('a');
    a.href = '#logs'; a.dataset.logs = s.name; a.textContent = s.name;
    const tag = originTag();
    const err = document.createElement('div');
    err.className = 'err muted'; err.dataset.k = 'error';
    th.append(a, tag, err);
    tr.appendChild(th);
    const stc = td();
    const sp = document.createElement('span');
    sp.dataset.k = 'state';
    stc.appendChild(sp);
    for (const [k, cls] of [['pid', 'n'], ['uptime', 'n'], ['restarts', 'n'], ['exit'], ['health'], ['next'], ['cpu', 'n'], ['mem', 'n']]) td(k, cls);
    const acts = td(null, 'acts');
    acts.append(button('start', 'Start'), button('stop', 'Stop'), button('restart', 'Restart'), button('signal', 'Signal'));
    const out = document.createElement('output');
    out.className = 'result';
    td().appendChild(out);
    let body = $(`tbody[data-group="${CSS.escape(s.group)}"]`);
    if (!body) {
      body = document.createElement('tbody');
      body.dataset.group = s.group;
      $('#table').appendChild(body);
    }
    body.appendChild(tr);
    const opt = document.createElement('option');
    opt.value = s.name; opt.textContent = s.name;
    $('#log-name').appendChild(opt);
    return tr;
  }

  function upsert(s, at) {
    let r = rows.get(s.name);
    const old = r ? r.s : null;
    if (!r) { r = { tr: addRow(s) }; rows.set(s.name, r); }
    r.s = s; r.at = at;
    render(r, old);
    task(s);
  }

  function remove(name) {
    const r = rows.get(name);
    if (!r) return;
    rows.delete(name);
    r.tr.remove();
    const opt = $(`#log-name option[value="${CSS.escape(name)}"]`);
    if (opt) opt.remove();
  }

  function replaceAll(list, time) {
    const at = Date.parse(time);
    const keep = new Set(list.map((s) => s.name));
    for (const n of Array.from(rows.keys())) if (!keep.has(n)) remove(n);
    for (const s of list) upsert(s, at);
  }

  // Tasks: state, last run and exit from the events; next run on the grid.
  function task(s) {
    const tr = $(`tr[data-task="${CSS.escape(s.name)}"]`);
    if (!tr) return;
    const st = cell(tr, 'state');
    st.textContent = '';
    const sp = document.createElement('span');
    sp.className = `st st-${s.state}`;
    sp.textContent = s.state;
    st.appendChild(sp);
    set(cell(tr, 'last'), s.started_at ? new Date(s.started_at).toISOString().replace('T', ' ').slice(0, 19) + ' UTC' : '–');
    set(cell(tr, 'exit'), exitText(s.last_exit));
  }
  let cronAsked = 0;
  function nextRuns() {
    let cronDue = false;
    for (const c of $$('td[data-k="nextrun"]')) {
      const every = Number(c.dataset.every);
      let t = Date.parse(c.textContent.replace(' UTC', 'Z').replace(' ', 'T'));
      if (Number.isNaN(t)) continue;
      const now = serverNow();
      if (t > now) continue;
      // A cron schedule's next run is the server's to say.
      if (c.dataset.cron) { cronDue = true; continue; }
      if (!every) continue;
      while (t <= now) t += every;
      set(c, utc(t));
    }
    // At most one question a minute, and only once a run has come.
    if (cronDue && Date.now() - cronAsked > 60000) {
      cronAsked = Date.now();
      fetch('/v1/tasks').then((r) => (r.ok ? r.json() : [])).then((list) => {
        for (const t of list) {
          const tr = $(`tr[data-task="${CSS.escape(t.name)}"]`);
          const c = tr && cell(tr, 'nextrun');
          if (c && c.dataset.cron && t.next_run) set(c, utc(Date.parse(t.next_run)));
        }
      }).catch(() => {});
    }
  }

  // --- the event stream -------------------------------------------------
  let lastId = document.body.dataset.lastEventId;
  const conn = $('#conn');
  function status(text, cls) { conn.textContent = text; conn.className = `conn ${cls}`; }
  function connect() {
    const es = new EventSource(`/v1/events?last_event_id=${encodeURIComponent(lastId)}${peerList ? '&peers=1' : ''}`);
    es.onopen = () => status('live', 'live');
    es.onerror = () => status(es.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting…', 'down');
    es.onmessage = (m) => {
      if (m.lastEventId) lastId = m.lastEventId;
      let ev;
      try { ev = JSON.parse(m.data); } catch (_) { return; }
      handle(ev);
      probe.events++;
      probe.last = ev;
    };
  }
  async function reread() {
    const r = await fetch('/v1/status');
    if (r.ok) replaceAll(await r.json(), new Date(serverNow()).toISOString());
  }
  function handle(ev) {
    switch (ev.kind) {
      case 'snapshot': replaceAll(ev.processes, ev.time); break;
      case 'reset': reread(); break;
      case 'removed': remove(ev.name); break;
      case 'reloaded': graphReload(); break;
      case 'cutoff': status('catching up…', 'down'); break;
      case 'peers': case 'peer': case 'peer_process': peerEvent(ev); break;
      default: if (ev.status) upsert(ev.status, Date.parse(ev.time));
    }
  }

  // --- peers: one section each, from the peer events of the stream -------
  const peerList = $('#peer-list');
  const peers = new Map(); // name -> { sec, view, body }
  const utc = (t) => new Date(t).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
  function peerSection(name) {
    let p = peers.get(name);
    if (p) return p;
    let sec = $(`section.peer[data-peer="${CSS.escape(name)}"]`, peerList);
    if (!sec) {
      sec = document.createElement('section');
      sec.className = 'peer';
      sec.dataset.peer = name;
      const h = document.createElement('h3');
      h.textContent = name;
      const health = document.createElement('p');
      health.className = 'peer-health muted';
      sec.append(h, health);
      peerList.appendChild(sec);
    }
    let table = $('table', sec);
    if (!table) {
      table = document.createElement('table');
      table.className = 'peer-procs';
      const head = document.createElement('thead');
      const tr = document.createElement('tr');
      for (const t of ['Process', 'State', 'PID', 'Restarts', 'Error', '', '']) {
        const th = document.createElement('th');
        th.textContent = t;
        tr.appendChild(th);
      }
      head.appendChild(tr);
      table.append(head, document.createElement('tbody'));
      const wrap = document.createElement('div');
      wrap.className = 'scroll';
      wrap.appendChild(table);
      sec.appendChild(wrap);
    }
    p = { sec, view: null, body: $('tbody', table) };
    peers.set(name, p);
    return p;
  }
  function peerHealth(p) {
    const v = p.view;
    let text;
    if (v.state === 'reachable') {
      const counts = Object.entries(v.counts).map(([st, n]) => `${n} ${st}`).join(', ');
      text = `reachable · tend ${v.version || '?'} · ${counts || 'no processes'}`;
    } else if (v.state === 'unreachable') {
      text = `unreachable since ${utc(v.since)}: ${v.error || ''}`;
    } else {
      text = v.state === 'connecting' ? 'connecting…' : 'not watched';
    }
    const h = $('.peer-health', p.sec);
    set(h, text);
    h.className = `peer-health ${v.state === 'reachable' ? 'ok' : v.state === 'unreachable' ? 'bad' : 'muted'}`;
    p.sec.dataset.state = v.state;
  }
  function peerRow(p, s) {
    let tr = $(`tr[data-name="${CSS.escape(s.name)}"]`, p.body);
    if (!tr) {
      tr = document.createElement('tr');
      tr.className = 'peer-proc';
      tr.dataset.name = s.name;
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = s.name;
      th.appendChild(originTag());
      tr.appendChild(th);
      for (const k of ['state', 'pid', 'restarts', 'error']) {
        const td = document.createElement('td');
        const sp = document.createElement('span');
        sp.dataset.k = k;
        td.appendChild(sp);
        tr.appendChild(td);
      }
      const acts = document.createElement('td');
      acts.className = 'acts';
      for (const [a, l] of [['start', 'Start'], ['stop', 'Stop'], ['restart', 'Restart']]) {
        const b = document.createElement('button');
        b.dataset.peerAct = a;
        b.textContent = l;
        acts.appendChild(b);
      }
      tr.appendChild(acts);
      const out = document.createElement('output');
      out.className = 'result';
      const td = document.createElement('td');
      td.appendChild(out);
      tr.appendChild(td);
      p.body.appendChild(tr);
    }
    const st = cell(tr, 'state');
    if (st.textContent !== s.state) { st.textContent = s.state; st.className = `st st-${s.state}`; tr.dataset.state = s.state; }
    set(cell(tr, 'pid'), UP.has(s.state) && s.pid != null ? String(s.pid) : '');
    set(cell(tr, 'restarts'), String(s.restarts ?? ''));
    set(cell(tr, 'error'), s.error || '');
    set(cell(tr, 'origin'), s.origin === 'added' ? 'added' : '');
  }
  function peerEvent(ev) {
    if (!peerList) return;
    if (ev.kind === 'peers') {
      const keep = new Set(ev.peers.map((v) => v.name));
      for (const [n, p] of Array.from(peers)) if (!keep.has(n)) { p.sec.remove(); peers.delete(n); }
      for (const v of ev.peers) { const p = peerSection(v.name); p.view = v; peerHealth(p); }
      return;
    }
    const p = peerSection(ev.peer.name);
    p.view = ev.peer;
    peerHealth(p);
    if (ev.processes) {
      const keep = new Set(ev.processes.map((s) => s.name));
      for (const tr of $$('tr.peer-proc', p.body)) if (!keep.has(tr.dataset.name)) tr.remove();
      for (const s of ev.processes) peerRow(p, s);
    }
    if (ev.process) peerRow(p, ev.process);
    if (ev.removed) { const tr = $(`tr[data-name="${CSS.escape(ev.removed)}"]`, p.body); if (tr) tr.remove(); }
  }
  async function peerAct(b) {
    const tr = b.closest('tr'), peer = b.closest('section.peer').dataset.peer, name = tr.dataset.name;
    const act = b.dataset.peerAct, out = $('output.result', tr);
    b.disabled = true;
    show(out, `${act}…`, 'busy');
    try {
      const j = await post(`/v1/peers/${encodeURIComponent(peer)}/processes/${encodeURIComponent(name)}/${act}`, {});
      const r = j.results[0];
      show(out, r ? `${act}: ${outcome(r)}` : 'nothing to do', !r || r.ok ? 'ok' : 'bad');
    } catch (e) {
      show(out, `${act}: ${e.message}`, 'bad');
    } finally {
      b.disabled = false;
    }
  }

  // --- actions ----------------------------------------------------------
  function outcome(r) {
    if (!r.ok) return r.error || 'failed';
    return { done: 'done', already_running: 'already running', already_stopped: 'already stopped' }[r.outcome] || r.outcome || 'ok';
  }
  function show(out, text, cls) { if (out) { out.textContent = text; out.className = `result ${cls}`; } }
  const rowOut = (name) => { const r = rows.get(name); return r ? r.tr.querySelector('output.result') : null; };
  async function post(path, body) {
    const r = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    let j = null;
    try { j = await r.json(); } catch (_) { /* not JSON */ }
    if (!r.ok) throw new Error((j && j.error) || `${r.status} ${r.statusText}`);
    return j;
  }
  const selected = () => $$('tr.proc input.sel:checked').map((c) => c.closest('tr').dataset.name);
  async function act(b) {
    const act = b.dataset.act, scope = b.dataset.scope || 'row';
    let targets, out, perRow = true;
    if (scope === 'all') { targets = ['all']; out = $('#result-all'); }
    else if (scope === 'sel') { targets = selected(); out = $('#result-all'); if (!targets.length) return show(out, 'select processes first', 'bad'); }
    else if (scope === 'group') { const g = b.closest('tbody').dataset.group; targets = [`${g}:*`]; out = b.closest('tr').querySelector('output.result'); }
    else { const n = b.closest('tr').dataset.name; targets = [n]; out = rowOut(n); perRow = false; }
    const verb = { start: 'starting', stop: 'stopping', restart: 'restarting', signal: 'signalling', stdin: 'sending' }[act];
    let body = { targets }, path = `/v1/${act}`;
    if (act === 'signal') body.signal = $('#selsig').value;
    if (act === 'stdin') {
      const text = window.prompt(`Send a line to the stdin of ${targets[0]}:`);
      if (text == null) return;
      path = '/v1/stdin'; body = { name: targets[0], data: `${text}\n` };
    }
    b.disabled = true;
    show(out, `${verb}…`, 'busy');
    try {
      const j = await post(path, body);
      if (act === 'stdin') return show(out, `sent ${j.bytes} bytes`, 'ok');
      const bad = j.results.filter((r) => !r.ok);
      for (const r of j.results) {
        if (perRow) show(rowOut(r.name), `${act}: ${outcome(r)}`, r.ok ? 'ok' : 'bad');
      }
      if (!perRow) {
        const r = j.results[0];
        show(out, r ? `${act}: ${outcome(r)}` : 'nothing to do', !r || r.ok ? 'ok' : 'bad');
      } else {
        show(out, `${act}: ${j.results.length - bad.length} done${bad.length ? `, ${bad.length} failed` : ''}`, bad.length ? 'bad' : 'ok');
      }
    } catch (e) {
      show(out, `${act}: ${e.message}`, 'bad');
    } finally {
      b.disabled = false;
    }
  }
  document.addEventListener('click', (e) => {
    const pb = e.target.closest('button[data-peer-act]');
    if (pb) { e.preventDefault(); peerAct(pb); return; }
    const b = e.target.closest('button[data-act]');
    if (b) { e.preventDefault(); act(b); return; }
    const l = e.target.closest('a[data-logs]');
    if (l) { $('#log-name').value = l.dataset.logs; logsOpen = true; openLogs(); }
  });

  // --- selection and filter ---------------------------------------------
  function selCount() {
    for (const tr of $$('tr.proc')) tr.classList.toggle('selected', tr.querySelector('input.sel').checked);
    $('#nsel').textContent = String(selected().length);
  }
  document.addEventListener('change', (e) => {
    const t = e.target;
    if (t.id === 'selall') for (const c of $$('tr.proc:not([hidden]) input.sel')) c.checked = t.checked;
    else if (t.classList.contains('gsel')) for (const c of $$('tr.proc input.sel', t.closest('tbody'))) c.checked = t.checked;
    if (t.type === 'checkbox') selCount();
  });
  $('#filter').addEventListener('input', (e) => {
    const q = e.target.value.toLowerCase();
    for (const [name, r] of rows) r.tr.hidden = q !== '' && !name.toLowerCase().includes(q);
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === '/' && !/^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName)) {
      e.preventDefault();
      $('#filter').focus();
    }
  });

  // --- CPU and memory (read when asked: nothing polls by default) ---------
  const usage = new Map();
  async function readUsage() {
    const r = await fetch('/v1/resources');
    if (!r.ok) return;
    const j = await r.json();
    const t = Date.parse(j.time) / 1000;
    const seen = new Set();
    for (const p of j.processes) {
      seen.add(p.name);
      const prev = usage.get(p.name);
      const pct = prev && prev.pid === p.pid && t > prev.t ? ((p.cpu_seconds - prev.cpu) / (t - prev.t)) * 100 : p.cpu_percent_since_start;
      usage.set(p.name, { pid: p.pid, cpu: p.cpu_seconds, t });
      const row = rows.get(p.name);
      if (!row) continue;
      const cpuCell = cell(row.tr, 'cpu'), memCell = cell(row.tr, 'mem');
      set(cpuCell, `${pct.toFixed(1)} %`);
      set(memCell, bytes(p.rss_bytes));
      // Where it was read, and what the cell has no room for.
      const n = p.processes ?? '?';
      const src = p.source === 'cgroup' ? `its cgroup (${n} process${n === 1 ? '' : 'es'})` : 'its main process (/proc)';
      title(cpuCell, `${p.cpu_seconds.toFixed(2)} s of CPU, from ${src}`);
      title(memCell, `${p.memory_peak_bytes != null ? `peak ${bytes(p.memory_peak_bytes)}, ` : ''}from ${src}`);
    }
    for (const [n, row] of rows) if (!seen.has(n)) {
      for (const k of ['cpu', 'mem']) { const c = cell(row.tr, k); set(c, ''); title(c, ''); }
    }
  }
  $('#usage').addEventListener('click', readUsage);
  let usageTimer = null;
  $('#usage-auto').addEventListener('change', (e) => {
    clearInterval(usageTimer);
    usageTimer = e.target.checked ? setInterval(() => { if (!document.hidden) readUsage(); }, 5000) : null;
  });

  // --- the dependency graph ---------------------------------------------
  const SVG = 'http://www.w3.org/2000/svg';
  function drawGraph(edges) {
    const box = $('#graph-svg');
    if (!box) return;
    box.textContent = '';
    if (!edges.length) return;
    const deps = new Map();
    for (const e of edges) {
      if (!deps.has(e.from)) deps.set(e.from, []);
      if (!deps.has(e.to)) deps.set(e.to, []);
      deps.get(e.from).push(e.to);
    }
    const depth = new Map();
    const walk = (n, seen) => {
      if (depth.has(n)) return depth.get(n);
      if (seen.has(n)) return 0;
      seen.add(n);
      const d = Math.max(-1, ...deps.get(n).map((m) => walk(m, seen))) + 1;
      depth.set(n, d);
      return d;
    };
    for (const n of deps.keys()) walk(n, new Set());
    const cols = [];
    for (const [n, d] of depth) (cols[d] = cols[d] || []).push(n);
    const W = 150, H = 34, GX = 90, GY = 18, pos = new Map();
    cols.forEach((c, x) => c.sort().forEach((n, y) => pos.set(n, { x: 10 + x * (W + GX), y: 10 + y * (H + GY) })));
    const width = 20 + cols.length * (W + GX) - GX, height = 20 + Math.max(...cols.map((c) => c.length)) * (H + GY) - GY;
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    svg.setAttribute('width', width);
    const el = (tag, attrs, text) => {
      const e = document.createElementNS(SVG, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      if (text != null) e.textContent = text;
      svg.appendChild(e);
      return e;
    };
    for (const e of edges) {
      const a = pos.get(e.from), b = pos.get(e.to);
      const x1 = a.x, y1 = a.y + H / 2, x2 = b.x + W, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
      el('path', { class: 'edge', d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, 'marker-end': '' });
      el('text', { class: 'lab', x: mx, y: (y1 + y2) / 2 - 3, 'text-anchor': 'middle' }, e.condition + (e.restart ? ' ↻' : ''));
    }
    for (const [n, p] of pos) {
      el('rect', { x: p.x, y: p.y, width: W, height: H, rx: 5 });
      el('text', { x: p.x + W / 2, y: p.y + H / 2 + 4, 'text-anchor': 'middle' }, n);
    }
    box.appendChild(svg);
  }
  const edgesFromTable = () => $$('#edges tbody tr').map((tr) => ({ from: tr.dataset.from, to: tr.dataset.to, condition: tr.children[2].textContent, restart: tr.children[3].textContent === 'yes' }));
  async function graphReload() {
    const r = await fetch('/v1/graph');
    if (r.ok) drawGraph((await r.json()).edges);
  }

  // --- logs -------------------------------------------------------------
  const log = $('#log');
  const L = { lines: [], paused: false, held: [], ctl: null, name: '', stream: '', q: '' };
  const MAX_LINES = 5000;
  function logParams(extra) {
    const p = new URLSearchParams();
    if (L.name) p.append('pattern', L.name);
    if (L.stream) p.append('stream', L.stream);
    for (const [k, v] of Object.entries(extra)) p.append(k, v);
    return p.toString();
  }
  function lineNode(l) {
    const div = document.createElement('div');
    if (l.stream === 'stderr') div.className = 'l-err';
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = `${(l.time || '').slice(11, 23)} ${L.name ? '' : `${l.name} `}${l.stream === 'stderr' ? '! ' : '  '}`;
    div.appendChild(who);
    const text = l.line != null ? l.line : l.line_b64 != null ? `(binary) ${l.line_b64}` : l.note || '';
    if (L.q) {
      const low = text.toLowerCase();
      let i = 0, j;
      while ((j = low.indexOf(L.q, i)) >= 0) {
        div.appendChild(document.createTextNode(text.slice(i, j)));
        const m = document.createElement('mark');
        m.textContent = text.slice(j, j + L.q.length);
        div.appendChild(m);
        i = j + L.q.length;
      }
      div.appendChild(document.createTextNode(text.slice(i)));
    } else {
      div.appendChild(document.createTextNode(text));
    }
    return div;
  }
  const matches = (l) => !L.q || (l.line || l.note || '').toLowerCase().includes(L.q);
  function redraw() {
    log.textContent = '';
    const frag = document.createDocumentFragment();
    for (const l of L.lines) if (matches(l)) frag.appendChild(lineNode(l));
    log.appendChild(frag);
    log.scrollTop = log.scrollHeight;
    info();
  }
  function info() {
    const parts = [`${L.lines.length} lines`];
    if (L.paused) parts.push(`paused, ${L.held.length} new`);
    $('#log-info').textContent = parts.join(' · ');
  }
  function append(items) {
    if (L.paused) { L.held.push(...items); info(); return; }
    if (items.some((l) => l.continues)) {
      // More of a line sent before its newline: it joins that line.
      for (const l of items) {
        let prev = null;
        if (l.continues && l.line != null) {
          for (let i = L.lines.length - 1; i >= 0 && !prev; i--) {
            const p = L.lines[i];
            if (p.name === l.name && p.stream === l.stream) prev = p;
          }
        }
        if (prev && prev.line != null) prev.line += l.line; else L.lines.push(l);
      }
      if (L.lines.length > MAX_LINES) L.lines.splice(0, L.lines.length - MAX_LINES);
      redraw();
      return;
    }
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    L.lines.push(...items);
    const frag = document.createDocumentFragment();
    for (const l of items) if (matches(l)) frag.appendChild(lineNode(l));
    log.appendChild(frag);
    if (L.lines.length > MAX_LINES) {
      const cut = L.lines.length - MAX_LINES;
      L.lines.splice(0, cut);
      while (log.childNodes.length > L.lines.length) log.firstChild.remove();
    }
    if (atEnd) log.scrollTop = log.scrollHeight;
    info();
  }
  async function openLogs() {
    if (L.ctl) L.ctl.abort();
    L.name = $('#log-name').value;
    L.stream = $('#log-stream').value;
    L.lines = []; L.held = [];
    log.textContent = '';
    for (const [id, s] of [['#log-download', 'stdout'], ['#log-download-err', 'stderr']]) {
      const a = $(id);
      a.hidden = !L.name;
      if (L.name) a.href = `/v1/logs/file?name=${encodeURIComponent(L.name)}&stream=${s}`;
    }
    const ctl = (L.ctl = new AbortController());
    try {
      const r = await fetch(`/v1/logs?${logParams({ n: 200, follow: 'true' })}`, { signal: ctl.signal });
      if (!r.ok) { append([{ note: `cannot read the logs: ${r.status}` }]); return; }
      const rd = r.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await rd.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        const parts = buf.split('\n');
        buf = parts.pop();
        const items = [];
        for (const p of parts) {
          if (!p) continue;
          const j = JSON.parse(p);
          items.push(j.lagged != null ? { note: `… ${j.lagged} batches of lines skipped (too fast to show)` } : j);
        }
        if (items.length) append(items);
      }
    } catch (e) {
      if (e.name !== 'AbortError') append([{ note: `the log stream ended: ${e.message}` }]);
    }
  }
  async function earlier() {
    const have = L.lines.filter((l) => l.time);
    const r = await fetch(`/v1/logs?${logParams({ n: have.length + 200 })}`);
    if (!r.ok) return;
    const all = (await r.text()).split('\n').filter(Boolean).map((t) => JSON.parse(t)).filter((l) => l.time);
    const first = have.length ? have[0].time : null;
    const older = first ? all.filter((l) => l.time < first) : all;
    if (!older.length) { $('#log-info').textContent = 'no earlier lines in the daemon\'s memory: download the file for the whole log'; return; }
    L.lines.unshift(...older);
    const top = log.scrollHeight;
    const frag = document.createDocumentFragment();
    for (const l of older) if (matches(l)) frag.appendChild(lineNode(l));
    log.insertBefore(frag, log.firstChild);
    log.scrollTop += log.scrollHeight - top;
    info();
  }
  $('#log-name').addEventListener('change', () => { logsOpen = true; openLogs(); });
  $('#log-stream').addEventListener('change', () => { logsOpen = true; openLogs(); });
  $('#log-earlier').addEventListener('click', earlier);
  $('#log-search').addEventListener('input', (e) => { L.q = e.target.value.toLowerCase(); redraw(); });
  $('#log-pause').addEventListener('click', (e) => {
    L.paused = !L.paused;
    e.target.textContent = L.paused ? 'Resume' : 'Pause';
    e.target.setAttribute('aria-pressed', String(L.paused));
    if (!L.paused && L.held.length) { const h = L.held; L.held = []; append(h); }
    info();
  });

  // --- start ------------------------------------------------------------
  for (const r of rows.values()) render(r, null);
  setInterval(() => {
    if (document.hidden) return;
    for (const r of rows.values()) if (UP.has(r.s.state) || r.s.state === 'backoff') timeCells(r);
    nextRuns();
  }, 1000);
  drawGraph(edgesFromTable());
  connect();
  readUsage();
  // The log stream opens when the log view is used or comes into sight, so a
  // dashboard that nobody scrolls down holds one stream (events), not two.
  const openOnce = () => { if (!logsOpen) { logsOpen = true; openLogs(); } };
  for (const id of ['#log-search', '#log-pause', '#log-earlier', '#log']) $(id).addEventListener('focus', openOnce);
  if ('IntersectionObserver' in window) {
    new IntersectionObserver((es, o) => { if (es.some((e) => e.isIntersecting)) { o.disconnect(); openOnce(); } }).observe(log);
  } else {
    openOnce();
  }
  probe.ready = true;
})();
