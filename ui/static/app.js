// raftkv dashboard: members, request charts, a key browser and editor, and a watch.
//
// Rules this file keeps, because the server's Content-Security-Policy and the
// data demand them: no inline handlers or styles (addEventListener, classes);
// no innerHTML: every key and value is user data and goes in with textContent;
// no request but to this node's own API, by URLs relative to the page.
'use strict';

(() => {
  // ---------------------------------------------------------------- helpers

  const $ = (id) => document.getElementById(id);

  // The API root: the page lives at <root>ui/, so a proxy sub-path keeps working.
  const ROOT = location.pathname.replace(/ui\/[^/]*$/, '');

  // el('td', {class: 'num'}, 'text', child) builds an element; strings become text nodes.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) e.append(c instanceof Node ? c : String(c ?? ''));
    return e;
  }

  const utf8 = new TextEncoder();
  // ignoreBOM keeps a leading byte-order mark in the text, so that saving a
  // value unchanged writes back the same bytes.
  const strictUTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

  function b64ToBytes(s) {
    const bin = atob(s || '');
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  // The bytes as text, or null when they are not valid UTF-8.
  function bytesToText(bytes) {
    try { return strictUTF8.decode(bytes); } catch { return null; }
  }

  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');

  // A key or value for display: {text, binary}.
  function show(bytes) {
    const t = bytesToText(bytes);
    return t === null ? { text: hex(bytes), binary: true } : { text: t, binary: false };
  }

  // Percent-encodes every byte but the unreserved ones, so binary keys reach
  // the API intact (it decodes %2F and %FF alike).
  function escapeKey(bytes) {
    let s = '';
    for (const b of bytes) {
      const c = String.fromCharCode(b);
      s += /[A-Za-z0-9\-_.~]/.test(c) ? c : '%' + b.toString(16).toUpperCase().padStart(2, '0');
    }
    return s;
  }

  const startsWith = (bytes, prefix) => prefix.length <= bytes.length && prefix.every((b, i) => bytes[i] === b);

  function duration(sec) {
    if (!(sec >= 0)) return '';
    sec = Math.floor(sec);
    const d = Math.floor(sec / 86400), h = Math.floor(sec / 3600) % 24, m = Math.floor(sec / 60) % 60, s = sec % 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    return m ? `${m}m ${s}s` : `${s}s`;
  }

  // humanBytes writes a size as people read it: 70.1 MB.
  function humanBytes(n) {
    if (!(n >= 0)) return '';
    const units = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i === 0 || n >= 100 ? Math.round(n) : n.toFixed(1)) + ' ' + units[i];
  }

  // Shows a message in el with one of the classes ok, conflict, error.
  function say(node, kind, text) {
    node.textContent = text;
    node.className = node.className.replace(/\b(ok|conflict|error)\b/g, '').trim() + ' ' + kind;
    node.hidden = !text;
  }

  // "503 no_leader: the cluster has no leader"
  const describe = (res) => res.status ? `${res.status} ${res.code}: ${res.error}` : `no answer: ${res.error}`;

  // The global message area, for errors that belong to no section.
  function notice(what, res) {
    say($('message'), 'error', res ? `${what}: ${describe(res)}` : '');
  }

  // Runs an async event handler; a bug shows on the page instead of as an
  // unhandled rejection (the API helper itself never throws).
  function on(node, type, fn) {
    node.addEventListener(type, (ev) => {
      if (type === 'submit' || node.tagName === 'A') ev.preventDefault();
      Promise.resolve().then(() => fn(ev)).catch((err) => {
        // A bug, not an answer of the API: shown, and logged for whoever
        // looks at the console (the browser tests fail on it).
        say($('message'), 'error', `Internal error: ${err}`);
        console.error(err);
      });
    });
  }

  // ------------------------------------------------------------------- API

  const auth = { header: sessionStorage.getItem('raftkv.auth') || '', self: null };
  let session = 0; // bumped on sign-out so that running loops stop

  // api calls the node and never throws. The result has ok, status, headers
  // and either json/bytes or error/code. Expected failures (412, 404, 503)
  // are answers, not exceptions, and nothing is logged to the console.
  // A 401 signs the user out, except from another member (relayed by
  // /v1/members/{id}/status): that member's auth file may differ from ours.
  async function api(method, path, { headers = {}, body, as = 'json', timeout = 10000, signal, ownNode = true } = {}) {
    const ctl = new AbortController();
    const timer = timeout ? setTimeout(() => ctl.abort(), timeout) : 0;
    if (signal) signal.addEventListener('abort', () => ctl.abort());
    const h = { ...headers };
    if (auth.header) h.Authorization = auth.header;
    let resp;
    try {
      // credentials 'omit': the browser neither sends its own saved Basic
      // credentials nor pops up its login dialog on a 401; ours go in the header.
      resp = await fetch(ROOT + path, { method, headers: h, body, credentials: 'omit', cache: 'no-store', signal: ctl.signal });
      const res = { ok: resp.ok, status: resp.status, headers: resp.headers, resp };
      if (as === 'stream' && resp.ok) return res; // the caller reads the body; the timer is cleared below
      if (!resp.ok) {
        const text = await resp.text();
        let j = {};
        try { j = JSON.parse(text); } catch { j = { error: text.trim() || resp.statusText, code: 'http_' + resp.status }; }
        Object.assign(res, { error: j.error || resp.statusText, code: j.code || 'http_' + resp.status, json: j });
        if (resp.status === 401 && auth.self && ownNode) signedOut('Your credentials are no longer accepted: sign in again.');
      } else if (as === 'json') {
        res.json = await resp.json();
      } else {
        res.bytes = new Uint8Array(await resp.arrayBuffer());
      }
      return res;
    } catch (err) {
      const aborted = err && err.name === 'AbortError';
      return { ok: false, status: 0, code: aborted ? 'aborted' : 'network_error', error: aborted ? 'timed out or stopped' : String(err.message || err) };
    } finally {
      clearTimeout(timer);
    }
  }

  // A key is writable if the user is an admin or a write prefix starts it.
  function mayWrite(keyBytes) {
    const s = auth.self;
    if (!s || s.admin) return true;
    return (s.write || []).some((p) => startsWith(keyBytes, utf8.encode(p)));
  }

  // ---------------------------------------------------------------- sign-in

  async function start() {
    const res = await api('GET', 'v1/auth/self');
    if (res.status === 401) {
      const had = auth.header;
      auth.header = '';
      sessionStorage.removeItem('raftkv.auth');
      const left = sessionStorage.getItem('raftkv.message') || ''; // by signedOut, before a reload
      sessionStorage.removeItem('raftkv.message');
      return showLogin(had ? `Those credentials are not accepted (${res.code}).` : left);
    }
    if (res.ok) {
      auth.self = res.json;
    } else if (res.status === 404) {
      auth.self = { access_control: false, admin: true, read: [''], write: [''] }; // a node without the endpoint
    } else {
      notice('GET /v1/auth/self', res);
      setTimeout(start, 2000);
      return;
    }
    $('login').hidden = true;
    $('app').hidden = false;
    $('facts').hidden = false;
    const s = auth.self;
    $('whoami').textContent = !s.access_control ? 'access control off'
      : `${s.kind} ${s.name}${s.admin ? ' (admin)' : ''}`;
    $('logout-btn').hidden = !s.access_control;
    $('new-form').hidden = !s.admin && !(s.write || []).length;
    const mine = ++session;
    pollMembers(mine);
    pollStats(mine);
    listKeys(null);
  }

  function showLogin(message) {
    $('app').hidden = true;
    $('facts').hidden = true; // nothing to show before sign-in
    $('login').hidden = false;
    $('whoami').textContent = '';
    $('logout-btn').hidden = true;
    $('login-message').textContent = message || '';
    // Loopback traffic never leaves the machine; anything else over http does.
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(location.hostname);
    $('login-insecure').hidden = location.protocol !== 'http:' || loopback;
    $('login-user').focus();
  }

  // signedOut forgets the credentials and starts the page afresh: a reload
  // ends every loop, stream and request still running with them, and
  // leaves nothing the last user saw for the next one. The message
  // survives the reload in the tab's storage.
  function signedOut(message) {
    session++;
    sessionStorage.removeItem('raftkv.auth');
    sessionStorage.setItem('raftkv.message', message || '');
    location.reload();
  }

  on($('login'), 'submit', () => {
    const user = $('login-user').value, pass = $('login-password').value, token = $('login-token').value.trim();
    if (token) {
      auth.header = 'Bearer ' + token;
    } else if (user) {
      // btoa takes Latin-1 only: encode the UTF-8 bytes of user:pass first.
      auth.header = 'Basic ' + btoa(String.fromCharCode(...utf8.encode(user + ':' + pass)));
    } else {
      $('login-message').textContent = 'Give a user and password, or a token.';
      return;
    }
    sessionStorage.setItem('raftkv.auth', auth.header);
    $('login-password').value = '';
    $('login-token').value = '';
    return start();
  });

  on($('logout-btn'), 'click', () => signedOut('Signed out.'));
  on($('message'), 'click', () => { $('message').hidden = true; });

  // ---------------------------------------------------------------- members

  const cluster = { members: [], leader: 0, term: 0, noLeader: false, tick: 0 };

  async function pollMembers(mine) {
    if (mine !== session) return;
    try {
      await refreshMembers(mine);
    } finally {
      // Even after a bug in the drawing: one exception must not stop the
      // table for good (it still reaches the console).
      setTimeout(() => pollMembers(mine), 1000);
    }
  }

  async function refreshMembers(mine) {
    // A tab nobody looks at asks nothing: each round costs every member a
    // status request.
    if (document.hidden) return;
    // The member list changes rarely: every other round (2 s); statuses every second.
    const wantList = cluster.tick++ % 2 === 0 || !cluster.members.length;
    const [own, list] = await Promise.all([
      api('GET', 'v1/status', { timeout: 3000 }),
      wantList ? api('GET', 'v1/members', { timeout: 3000 }) : null,
    ]);
    if (mine !== session) return;
    if (list) {
      if (list.ok) {
        Object.assign(cluster, { members: list.json.members || [], leader: list.json.leader, term: list.json.term, noLeader: false });
        $('cluster-id').textContent = list.json.cluster_id;
        $('members-note').textContent = '';
      } else {
        // 503 no_leader: keep the last table, say so loudly.
        cluster.noLeader = list.code === 'no_leader';
        if (cluster.noLeader) cluster.leader = 0;
        $('members-note').textContent = `member list: ${describe(list)}`;
      }
    }
    if (own.ok) {
      const s = own.json;
      $('node-id').textContent = s.id;
      $('cluster-id').textContent = s.cluster_id;
      if (cluster.noLeader || !cluster.members.length) cluster.term = s.term;
      $('fault').hidden = !s.fault;
      $('fault').textContent = s.fault ? `This node reports a fault: ${s.fault}` : '';
    }
    $('no-leader').hidden = !cluster.noLeader;
    $('leader').textContent = cluster.leader ? String(cluster.leader) : 'none';
    $('term').textContent = cluster.term || '';

    // Each member's own status, in parallel; a failure marks its row only.
    const statuses = await Promise.all(cluster.members.map((m) => {
      if (own.ok && m.id === own.json.id) return own;
      if (!m.started) return null;
      return api('GET', `v1/members/${m.id}/status`, { timeout: 3000, ownNode: false });
    }));
    if (mine !== session) return;
    renderMembers(statuses, own);
  }

  function renderMembers(statuses, own) {
    const tbody = $('members').tBodies[0];
    const leaderIdx = cluster.members.findIndex((m) => m.id === cluster.leader);
    const leaderStatus = leaderIdx >= 0 && statuses[leaderIdx] && statuses[leaderIdx].ok ? statuses[leaderIdx].json : null;
    const rows = cluster.members.map((m, i) => {
      const st = statuses[i];
      const s = st && st.ok ? st.json : null;
      let role;
      if (!m.started) role = 'not-started';
      else if (!s) role = 'unreachable';
      else if (m.is_learner) role = 'learner';
      // The member list can be two seconds old; the member's own view is
      // fresh. A candidate counts only while no leader is known: a voter
      // cut off from a working cluster campaigns too.
      else if (m.id === cluster.leader || s.raft_state === 'leader') role = 'leader';
      else role = !cluster.leader && /candidate/.test(s.raft_state) ? 'candidate' : 'follower';
      // The statuses are read a moment apart: a member can seem ahead.
      const lag = s && leaderStatus ? Math.max(0, leaderStatus.applied_index - s.applied_index) : '';
      const match = m.progress && m.id !== cluster.leader ? m.progress.match : '';
      const roleCell = el('td', { class: 'role' }, el('span', { class: `badge ${role}` }, role.replace('-', ' ')));
      if (st && !st.ok) roleCell.append(el('span', { class: 'why', title: describe(st) }, ` ${st.code}`));
      return el('tr', { 'data-member-id': m.id, 'data-role': role, class: role === 'leader' ? 'leader' : (m.id === (own.ok && own.json.id) ? 'self' : '') },
        el('td', { class: 'mono' }, m.id, own.ok && m.id === own.json.id ? el('span', { class: 'tag' }, 'this node') : ''),
        el('td', {}, m.name || (s && s.name) || ''),
        el('td', { class: 'mono small' }, (m.peer_urls || []).join(' ')),
        el('td', { class: 'mono small' }, (m.client_urls || []).join(' ')),
        roleCell,
        el('td', {}, s ? s.raft_state : ''),
        el('td', { class: 'num mono' }, s ? s.applied_index : ''),
        el('td', { class: 'num mono' }, s ? s.commit_index : ''),
        el('td', { class: 'num mono' + (lag > 0 ? ' behind' : '') }, lag),
        el('td', { class: 'num mono' }, match),
        el('td', { class: 'num mono' }, s ? s.term : ''),
        el('td', { class: 'num' }, s ? humanBytes(s.data_dir_bytes) : ''),
        el('td', { class: 'num' }, s ? duration(s.uptime_seconds) : ''));
    });
    // With no member list at all yet (no leader since the page opened), show this node.
    if (!rows.length && own.ok) {
      const s = own.json;
      rows.push(el('tr', { 'data-member-id': s.id, 'data-role': s.raft_state === 'leader' ? 'leader' : 'follower', class: 'self' },
        el('td', { class: 'mono' }, s.id, el('span', { class: 'tag' }, 'this node')), el('td', {}, s.name), el('td'), el('td'),
        el('td', {}, '?'), el('td', {}, s.raft_state), el('td', { class: 'num mono' }, s.applied_index),
        el('td', { class: 'num mono' }, s.commit_index), el('td'), el('td'), el('td', { class: 'num mono' }, s.term),
        el('td', { class: 'num' }, humanBytes(s.data_dir_bytes)), el('td', { class: 'num' }, duration(s.uptime_seconds))));
    }
    tbody.replaceChildren(...rows);
  }

  // ----------------------------------------------------------------- charts

  async function pollStats(mine) {
    if (mine !== session) return;
    try {
      await refreshStats(mine);
    } finally {
      setTimeout(() => pollStats(mine), 2000);
    }
  }

  async function refreshStats(mine) {
    if (document.hidden) return;
    const res = await api('GET', 'v1/stats', { timeout: 3000 });
    if (mine !== session) return;
    if (res.ok) {
      const s = res.json.samples || [];
      const now = s.length ? s[s.length - 1].time : Date.now() / 1000;
      const pick = (f) => s.map((x) => [x.time, x[f]]);
      // A latency of 0 means "no request that second": a gap, not a dip to zero.
      const lat = (f) => s.map((x) => [x.time, x.reads + x.writes ? x[f] : null]);
      drawChart($('chart-throughput'), now, [['reads', pick('reads')], ['writes', pick('writes')], ['errors', pick('errors')]], '/s');
      drawChart($('chart-latency'), now, [['p50', lat('p50_ms')], ['p99', lat('p99_ms')]], ' ms');
      $('charts-note').textContent = '';
    } else {
      $('charts-note').textContent = `stats: ${describe(res)}`;
    }
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // A round axis maximum: 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    return [1, 2, 5, 10].map((f) => f * p).find((c) => c >= v);
  }

  // drawChart draws lines of [time, value] points over the 5 minutes before
  // now into the svg (viewBox 560x120); each series gets class s0, s1, ...
  // A null value breaks the line.
  function drawChart(node, now, series, unit) {
    const W = 560, H = 120, L = 44, R = 8, T = 22, B = 18, span = 300;
    const max = niceMax(Math.max(0, ...series.flatMap(([, pts]) => pts.map((p) => p[1] || 0))));
    const x = (t) => L + (W - L - R) * (1 - (now - t) / span);
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const parts = [
      svg('line', { x1: L, y1: y(max), x2: W - R, y2: y(max), class: 'gridline' }),
      svg('line', { x1: L, y1: y(max / 2), x2: W - R, y2: y(max / 2), class: 'gridline' }),
      svg('line', { x1: L, y1: y(0), x2: W - R, y2: y(0), class: 'axis' }),
      svg('text', { x: L - 4, y: y(max) + 4, class: 'label end' }, fmt(max) + unit),
      svg('text', { x: L - 4, y: y(0) + 4, class: 'label end' }, '0'),
      svg('text', { x: L, y: H - 4, class: 'label' }, '−5 min'),
      svg('text', { x: W - R, y: H - 4, class: 'label end' }, 'now'),
    ];
    series.forEach(([name, pts], i) => {
      const inside = pts.filter((p) => now - p[0] <= span);
      for (const run of runs(inside)) {
        // A lone point gets a short stroke of its own, or it would not show.
        const xy = run.length > 1 ? run.map((p) => [x(p[0]), y(p[1])]) : [[x(run[0][0]) - 1.5, y(run[0][1])], [x(run[0][0]) + 1.5, y(run[0][1])]];
        parts.push(svg('polyline', { points: xy.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' '), class: `series s${i}` }));
      }
      // Legend along the top, with the latest value.
      const known = inside.filter((p) => p[1] !== null);
      const last = known.length ? fmt(known[known.length - 1][1]) : '–';
      const lx = L + i * 120;
      parts.push(svg('rect', { x: lx, y: 6, width: 10, height: 10, class: `swatch s${i}` }));
      parts.push(svg('text', { x: lx + 14, y: 15, class: 'label' }, `${name} ${last}`));
    });
    node.replaceChildren(...parts);
  }

  // runs splits points into the stretches between null values.
  function runs(pts) {
    const out = [[]];
    for (const p of pts) {
      if (p[1] === null) { if (out[out.length - 1].length) out.push([]); } else out[out.length - 1].push(p);
    }
    return out.filter((r) => r.length);
  }

  const fmt = (v) => (v >= 100 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(v >= 10 ? 1 : 2));

  // ------------------------------------------------------------------- keys

  const PAGE = 50;
  // seq numbers the listings: only the latest one asked for is shown, however
  // their answers arrive.
  const listing = { prefix: '', cursor: null, next: null, seq: 0 };

  // listKeys shows the page after cursor (null: the first page).
  async function listKeys(cursor) {
    const seq = ++listing.seq;
    listing.cursor = cursor;
    let q = `v1/kv/?keys_only=true&limit=${PAGE}`;
    if (listing.prefix) q += '&prefix=' + encodeURIComponent(listing.prefix);
    if (cursor) q += '&cursor=' + encodeURIComponent(cursor);
    const res = await api('GET', q);
    if (seq !== listing.seq) return;
    if (!res.ok) {
      $('keys-note').textContent = `listing: ${describe(res)}`;
      return;
    }
    const kvs = res.json.kvs || [];
    $('keys').tBodies[0].replaceChildren(...kvs.map((kv) => {
      const bytes = b64ToBytes(kv.key);
      const k = show(bytes);
      const tr = el('tr', { 'data-key': k.text, tabindex: 0 },
        el('td', { class: 'mono key' }, k.text, k.binary ? el('span', { class: 'tag' }, 'binary') : ''),
        el('td', { class: 'num mono' }, kv.mod_revision),
        el('td', { class: 'num mono' }, kv.version));
      on(tr, 'click', () => openKey(bytes));
      on(tr, 'keydown', (ev) => { if (ev.key === 'Enter') return openKey(bytes); });
      return tr;
    }));
    $('next-page-btn').disabled = !res.json.more;
    listing.next = res.json.next_cursor || null;
    $('first-page-btn').disabled = !cursor;
    $('keys-note').textContent = `${kvs.length} key${kvs.length === 1 ? '' : 's'}${cursor ? ' (later page)' : ''} at revision ${res.json.revision}`;
  }

  on($('list-form'), 'submit', () => { listing.prefix = $('prefix').value; return listKeys(null); });
  on($('next-page-btn'), 'click', () => listKeys(listing.next));
  on($('first-page-btn'), 'click', () => listKeys(null));

  // The key open in the editor: its bytes and the revision it was read at,
  // which Save and Delete send as If-Match.
  const open = { key: null, modRevision: 0, binaryValue: false, current: null, seq: 0 };

  // readKey fetches a key: {res, meta} with meta null when it failed.
  async function readKey(bytes) {
    const res = await api('GET', 'v1/kv/' + escapeKey(bytes), { as: 'bytes' });
    if (!res.ok) return { res, meta: null };
    const h = res.headers;
    return {
      res,
      meta: {
        value: res.bytes,
        createRevision: h.get('X-Raftkv-Create-Revision'),
        modRevision: Number(h.get('X-Raftkv-Mod-Revision')),
        version: h.get('X-Raftkv-Version'),
        lease: h.get('X-Raftkv-Lease'),
      },
    };
  }

  // openKey loads a key into the editor; message (optional) stays shown.
  async function openKey(bytes, message) {
    const seq = ++open.seq; // the last key clicked wins, not the last answer
    const { res, meta } = await readKey(bytes);
    if (seq !== open.seq) return;
    open.key = bytes;
    $('key-view').hidden = false;
    const k = show(bytes);
    $('kv-key').textContent = k.text;
    $('kv-binary-key').hidden = !k.binary;
    hideConflict();
    confirming(false);
    if (!meta) {
      fill(null);
      say($('kv-message'), 'error', res.status === 404 ? 'This key does not exist (deleted?).' : `Read failed: ${describe(res)}`);
      return;
    }
    fill(meta);
    say($('kv-message'), 'ok', message || '');
  }

  // fill shows a key's details, or clears them (meta null: the key is gone).
  function fill(meta) {
    open.modRevision = meta ? meta.modRevision : 0;
    const v = meta ? show(meta.value) : { text: '', binary: false };
    // A text box turns \r\n and \r into \n: saving such a value unchanged
    // would change its bytes. It is shown read-only, as binary data is.
    const lossy = v.binary || v.text.includes('\r');
    open.binaryValue = lossy;
    $('kv-value').value = v.text;
    $('kv-value').readOnly = lossy || !meta || !mayWrite(open.key);
    $('kv-binary-note').hidden = !lossy;
    $('kv-binary-note').textContent = v.binary ? 'The value is not valid UTF-8: shown read-only as hex.'
      : 'The value holds carriage returns, which this text box would change: shown read-only. Edit it with curl or raftkv put.';
    $('kv-create-revision').textContent = meta ? meta.createRevision : '';
    $('kv-mod-revision').textContent = meta ? meta.modRevision : '';
    $('kv-version').textContent = meta ? meta.version : '';
    $('kv-lease').textContent = meta ? (meta.lease || 'none') : '';
    const writable = !!meta && mayWrite(open.key);
    $('save-btn').hidden = !writable || lossy;
    $('delete-btn').hidden = !writable;
  }

  async function save() {
    const key = open.key;
    const res = await api('PUT', 'v1/kv/' + escapeKey(key), {
      headers: { 'If-Match': `"${open.modRevision}"`, 'Content-Type': 'application/octet-stream' },
      body: $('kv-value').value,
    });
    if (res.ok) {
      await openKey(key, `Saved at revision ${res.json.revision}.`);
      return refreshList();
    }
    return failedWrite(res, 'Save');
  }

  // failedWrite explains a refused Save or Delete; a 412 shows what is there now.
  async function failedWrite(res, what) {
    if (res.status === 412) {
      say($('kv-message'), 'conflict', 'Conflict (412): the key changed since you opened it. Nothing was written.');
      const cur = await readKey(open.key);
      open.current = cur.meta;
      $('kv-conflict').hidden = false;
      if (cur.meta) {
        $('kv-current-revision').textContent = cur.meta.modRevision;
        $('kv-current').textContent = show(cur.meta.value).text;
        $('load-current-btn').hidden = false;
      } else {
        $('kv-current-revision').textContent = '—';
        $('kv-current').textContent = cur.res.status === 404 ? '(the key has been deleted since)' : `(could not read it: ${describe(cur.res)})`;
        $('load-current-btn').hidden = true;
      }
    } else if (res.status === 404) {
      say($('kv-message'), 'error', `${what} failed: the key was deleted since you opened it.`);
    } else {
      say($('kv-message'), 'error', `${what} failed: ${describe(res)}`);
    }
  }

  function hideConflict() {
    $('kv-conflict').hidden = true;
    open.current = null;
  }

  // The inline delete confirmation, instead of window.confirm.
  function confirming(yes) {
    $('confirm-delete-btn').hidden = !yes;
    $('cancel-delete-btn').hidden = !yes;
    $('delete-btn').disabled = yes;
  }

  async function remove() {
    confirming(false);
    const res = await api('DELETE', 'v1/kv/' + escapeKey(open.key), { headers: { 'If-Match': `"${open.modRevision}"` } });
    if (!res.ok) return failedWrite(res, 'Delete');
    hideConflict();
    fill(null);
    say($('kv-message'), 'ok', `Deleted at revision ${res.json.revision}.`);
    return refreshList();
  }

  const refreshList = () => listKeys(listing.cursor);

  on($('save-btn'), 'click', save);
  on($('reload-btn'), 'click', () => openKey(open.key));
  on($('delete-btn'), 'click', () => confirming(true));
  on($('cancel-delete-btn'), 'click', () => confirming(false));
  on($('confirm-delete-btn'), 'click', remove);
  on($('load-current-btn'), 'click', () => {
    if (open.current) fill(open.current); // the next Save compares against this revision
    hideConflict();
    say($('kv-message'), 'ok', 'Loaded the current value.');
  });

  on($('new-form'), 'submit', async () => {
    const key = $('new-key').value;
    if (!key) return;
    const bytes = utf8.encode(key);
    const res = await api('PUT', 'v1/kv/' + escapeKey(bytes), {
      headers: { 'If-None-Match': '*', 'Content-Type': 'application/octet-stream' },
      body: $('new-value').value,
    });
    const msg = $('new-message');
    if (res.ok) {
      say(msg, 'ok', '');
      $('new-key').value = '';
      $('new-value').value = '';
      await openKey(bytes, `Created at revision ${res.json.revision}.`);
      return refreshList();
    }
    say(msg, 'error', res.status === 412 ? `"${key}" already exists (412): open it to edit it.` : `Create failed: ${describe(res)}`);
  });

  // ------------------------------------------------------------------ watch

  const MAX_EVENTS = 200;
  // The running watch: abort stops it; next is the revision to resume from.
  let watch = null;

  function watchState(text, cls) {
    $('watch-state').textContent = text;
    $('watch-state').className = 'state ' + (cls || '');
  }

  function stopWatch(text) {
    if (watch) {
      watch.stopped = true;
      watch.abort.abort();
      clearTimeout(watch.timer);
      watch = null;
    }
    watchState(text || 'stopped', text ? 'error' : '');
    $('watch-btn').disabled = false;
    $('watch-stop-btn').disabled = true;
  }

  on($('watch-form'), 'submit', () => {
    stopWatch();
    $('watch-events').replaceChildren();
    watch = { prefix: utf8.encode($('watch-prefix').value), next: 0, backoff: 1000, abort: null, timer: 0, stopped: false };
    $('watch-btn').disabled = true;
    $('watch-stop-btn').disabled = false;
    return runWatch(watch);
  });
  on($('watch-stop-btn'), 'click', () => stopWatch());

  // runWatch keeps one stream open until stopped, resuming after a drop at
  // the first revision not received, so no event is missed or repeated.
  async function runWatch(w) {
    while (!w.stopped) {
      watchState(w.next ? 'connecting (resuming)' : 'connecting', 'wait');
      w.abort = new AbortController();
      let q = `v1/watch/${escapeKey(w.prefix)}?prefix=true`;
      if (w.next) q += `&from=${w.next}`;
      const res = await api('GET', q, { as: 'stream', timeout: 0, signal: w.abort.signal });
      if (w.stopped) return;
      if (res.ok) {
        // The stream starts after X-Raftkv-Revision: resuming from there is exact even before an event.
        if (!w.next) w.next = Number(res.headers.get('X-Raftkv-Revision')) + 1 || 0;
        w.backoff = 1000;
        watchState('live', 'ok');
        const end = await readStream(w, res.resp.body);
        if (w.stopped) return;
        if (end && end.fatal) return stopWatch(end.fatal);
      } else if ([400, 401, 403, 404, 410].includes(res.status)) {
        // Retrying would not help: a bad prefix, no right to it, or history compacted.
        const hint = res.status === 410 ? ' (list the keys again, then watch)' : '';
        return stopWatch(`stopped: ${describe(res)}${hint}`);
      }
      // Dropped, refused (503 busy) or unreachable: wait, doubling up to 10 s.
      for (let left = Math.ceil(w.backoff / 1000); left > 0 && !w.stopped; left--) {
        watchState(`reconnecting in ${left}s`, 'wait');
        await new Promise((r) => { w.timer = setTimeout(r, 1000); });
      }
      w.backoff = Math.min(w.backoff * 2, 10000);
    }
  }

  // readStream parses Server-Sent Events until the stream ends; it returns
  // {fatal} when the server ended it in a way that cannot be resumed.
  async function readStream(w, body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = '', ev = { event: 'message', data: [] }, pending = [], result = null;
    // The server sends a keepalive every 10 s: 25 s of silence means a dead connection.
    let silent = 0;
    const dog = setInterval(() => { if (++silent > 25) w.abort.abort(); }, 1000);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        silent = 0;
        buf += decoder.decode(value, { stream: true });
        // Complete lines only; a lone trailing \r might be half of \r\n.
        const lines = buf.split(/\r\n|\n|\r(?!$)/);
        buf = lines.pop();
        for (const line of lines) {
          if (line === '') { // blank line: dispatch the event
            result = dispatch(w, ev, pending) || result;
            ev = { event: 'message', data: [] };
            continue;
          }
          if (line[0] === ':') continue; // comment (keepalive)
          const i = line.indexOf(':');
          const field = i < 0 ? line : line.slice(0, i);
          let val = i < 0 ? '' : line.slice(i + 1);
          if (val[0] === ' ') val = val.slice(1);
          if (field === 'event') ev.event = val;
          else if (field === 'data') ev.data.push(val);
          else if (field === 'id') ev.id = val;
        }
        if (result) break;
      }
    } catch {
      // Aborted or the connection broke: the caller resumes from w.next.
    } finally {
      clearInterval(dog);
      reader.cancel().catch(() => {});
    }
    return result;
  }

  // dispatch handles one SSE event. Events wait in pending until the id:
  // that closes their revision, so a stream cut inside a revision shows
  // nothing of it, and the resumed stream sends it whole, once.
  function dispatch(w, ev, pending) {
    if (!ev.data.length && ev.id === undefined) return null;
    let d = null;
    try { d = ev.data.length ? JSON.parse(ev.data.join('\n')) : null; } catch { d = null; }
    if (ev.event === 'error') {
      const msg = d ? `${d.code}: ${d.error}` : 'error';
      if (d && d.resume_from) {
        w.next = d.resume_from;
        watchState(`ended (${d.code}); resuming at ${d.resume_from}`, 'wait');
        return { resume: true };
      }
      return { fatal: `stopped: ${msg}` };
    }
    if (d && (ev.event === 'put' || ev.event === 'delete')) pending.push(d);
    if (ev.id !== undefined && /^\d+$/.test(ev.id)) {
      // Shown first: should showing fail, the revision is asked for again
      // rather than skipped.
      for (const e of pending.splice(0)) addEvent(e);
      w.next = Number(ev.id) + 1;
    }
    return null;
  }

  function addEvent(e) {
    const k = show(b64ToBytes(e.key));
    const v = e.type === 'put' ? show(b64ToBytes(e.value)) : null;
    const li = el('li', { 'data-revision': e.revision, 'data-key': k.text, class: e.type },
      el('span', { class: 'rev mono' }, e.revision),
      el('span', { class: `badge ${e.type}` }, e.type),
      el('span', { class: 'mono key' }, k.text, k.binary ? el('span', { class: 'tag' }, 'binary') : ''),
      v ? el('span', { class: 'mono value' }, v.text, v.binary ? el('span', { class: 'tag' }, 'hex') : '') : '');
    const list = $('watch-events');
    list.prepend(li);
    while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  }

  start();
})();
