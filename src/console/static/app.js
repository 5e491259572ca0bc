// The Stowage console page. Plain JavaScript, no build step. Every piece of stored data reaches the DOM as
// text (createTextNode / textContent), never as markup: a document holding "<script>" shows those characters.

const main = document.getElementById('main');
const status = document.getElementById('status');
let leave = () => undefined;

/** An element with properties (`on*` are listeners) and children (strings become text nodes). */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'className') node.className = value;
    // Through the CSSOM: the page's content security policy forbids style attributes.
    else if (name === 'indent') node.style.paddingLeft = `${value}rem`;
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
  return node;
}

function table(headers, rows, props = {}) {
  return el('table', props, el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))), el('tbody', {}, rows));
}

function say(text) {
  status.textContent = text;
}

async function call(path, init) {
  const response = await fetch(path, init);
  const body = response.headers.get('content-type')?.startsWith('application/json') ? await response.json() : {};
  if (!response.ok) throw new Error(body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${response.status}`);
  return body;
}

function post(path, body) {
  return call(path, { method: 'POST', headers: { 'content-type': 'application/json', 'x-stowage-console': '1' }, body: JSON.stringify(body) });
}

function json(value) {
  return JSON.stringify(value, null, 2);
}

function when(date) {
  return date ? new Date(date).toISOString().replace('T', ' ').slice(0, 19) : '';
}

// ---- pages -------------------------------------------------------------------------------------------

async function doctorPage(view) {
  const refresh = async () => {
    const { ports } = await call('api/doctor');
    view.replaceChildren(
      el('h2', {}, 'Doctor'),
      table(
        ['port', 'backend', 'url', 'status', 'latency ms', 'server', 'capabilities', 'hint'],
        ports.map((p) =>
          el('tr', { 'data-port': p.port },
            el('td', {}, p.port), el('td', {}, p.backend), el('td', {}, p.url),
            el('td', { className: p.ok ? 'ok' : 'bad' }, p.ok ? 'ok' : `${p.error.code}`),
            el('td', { className: 'num' }, p.latencyMs ?? ''), el('td', {}, p.serverVersion ?? ''),
            el('td', {}, (p.capabilities ?? []).join(', ')), el('td', {}, p.hint ?? '')),
        ),
        { id: 'doctor' },
      ),
    );
  };
  await refresh();
  const timer = setInterval(() => refresh().catch((e) => say(e.message)), 5000);
  return () => clearInterval(timer);
}

async function queuePage(view, params) {
  const { topics } = await call('api/queue/topics');
  const selected = params.get('topic');
  const from = Number(params.get('from') ?? '1') || 1;
  const PAGE = 50;
  const rows = [];
  for (const t of topics) {
    const link = el('a', { href: `#queue?topic=${encodeURIComponent(t.topic)}` }, t.topic);
    const groups = t.groups.length === 0 ? [{ group: '', backlog: '', pending: '', redelivered: '', ackFloor: '' }] : t.groups;
    groups.forEach((g, i) => {
      rows.push(el('tr', { 'data-topic': t.topic, 'data-group': g.group },
        el('td', {}, i === 0 ? link : ''), el('td', { className: 'num' }, i === 0 ? t.messages : ''),
        el('td', { className: 'num' }, i === 0 ? t.lastSeq : ''), el('td', { className: 'num dead' }, i === 0 ? t.deadLetters : ''),
        el('td', {}, g.group), el('td', { className: 'num' }, g.backlog), el('td', { className: 'num' }, g.pending),
        el('td', { className: 'num' }, g.redelivered), el('td', { className: 'num' }, g.ackFloor)));
    });
  }
  view.replaceChildren(
    el('h2', {}, 'Topics'),
    topics.length === 0 ? el('p', { className: 'muted' }, 'No topics yet.') : table(['topic', 'messages', 'last seq', 'dead letters', 'group', 'backlog', 'pending', 'redelivered', 'ack floor'], rows, { id: 'topics' }),
  );
  if (selected === null) return;
  const [{ messages }, { deadLetters }] = await Promise.all([
    call(`api/queue/messages?topic=${encodeURIComponent(selected)}&from=${from}&limit=${PAGE}`),
    call(`api/queue/dead?topic=${encodeURIComponent(selected)}`),
  ]);
  const reload = () => queuePage(view, params).catch((e) => say(e.message));
  const replay = async (seqs) => {
    const { replayed } = await post('api/queue/replay', seqs ? { topic: selected, seqs } : { topic: selected });
    say(`${replayed} dead letter${replayed === 1 ? '' : 's'} replayed`);
    await reload();
  };
  const purge = async () => {
    const typed = window.prompt(`Purge every message of "${selected}"? Type the topic name to confirm.`);
    if (typed !== selected) return say('purge cancelled');
    await post('api/queue/purge', { topic: selected, confirm: typed });
    say(`${selected} purged`);
    await reload();
  };
  view.append(
    el('h2', {}, `Dead letters of ${selected}`),
    el('div', { className: 'bar' },
      el('button', { id: 'replay-all', onclick: () => replay().catch((e) => say(e.message)), disabled: deadLetters.length === 0 }, 'Replay all'),
      el('button', { id: 'purge', className: 'danger', onclick: () => purge().catch((e) => say(e.message)) }, 'Purge topic…')),
    deadLetters.length === 0
      ? el('p', { id: 'no-dead-letters', className: 'muted' }, 'No dead letters.')
      : table(['seq', 'group', 'original seq', 'reason', 'error', 'deliveries', 'dead at', 'payload', ''],
          deadLetters.map((d) => el('tr', { 'data-seq': d.seq },
            el('td', { className: 'num' }, d.seq), el('td', {}, d.group), el('td', { className: 'num' }, d.originalSeq), el('td', {}, d.reason),
            el('td', {}, d.error ? `${d.error.code ?? ''} ${d.error.message}` : ''), el('td', { className: 'num' }, d.deliveryCount), el('td', {}, when(d.deadAt)),
            el('td', {}, el('pre', {}, d.payload.text)),
            el('td', {}, el('button', { className: 'replay', onclick: () => replay([d.seq]).catch((e) => say(e.message)) }, 'Replay')))),
          { id: 'dead-letters' }),
    el('h2', {}, `Messages of ${selected}`),
    el('div', { className: 'bar' },
      from > 1 ? el('a', { href: `#queue?topic=${encodeURIComponent(selected)}` }, 'Oldest') : '',
      messages.length === PAGE ? el('a', { id: 'messages-next', href: `#queue?topic=${encodeURIComponent(selected)}&from=${messages[messages.length - 1].seq + 1}` }, 'Next messages') : ''),
    table(['seq', 'id', 'published', 'headers', 'payload'],
      messages.map((m) => el('tr', { 'data-seq': m.seq }, el('td', { className: 'num' }, m.seq), el('td', {}, m.id ?? ''), el('td', {}, when(m.publishedAt)),
        el('td', {}, el('pre', {}, Object.keys(m.headers).length ? json(m.headers) : '')), el('td', {}, el('pre', {}, m.payload.text)))),
      { id: 'messages' }),
  );
}

async function configPage(view, params) {
  const prefix = params.get('prefix') ?? '';
  const entries = new Map();
  const body = el('tbody');
  const render = (flashKey) => {
    const keys = [...entries.keys()].sort();
    body.replaceChildren(...keys.map((key) => {
      const entry = entries.get(key);
      const depth = key.split('/').length - 1;
      const row = el('tr', { 'data-key': key, className: key === flashKey ? 'flash' : undefined },
        el('td', { indent: 0.6 + depth * 1.2 }, key.split('/').pop() || key),
        el('td', {}, key),
        el('td', {}, el('pre', { className: 'value' }, json(entry.value))),
        el('td', { className: 'num revision' }, entry.revision),
        el('td', {}, el('button', { className: 'edit', onclick: () => edit(key) }, 'Edit')));
      return row;
    }));
  };
  const editor = el('form', { id: 'config-edit' });
  const edit = (key) => {
    const entry = entries.get(key);
    const keyInput = el('input', { name: 'key', value: key ?? '', placeholder: 'key', size: 40, readonly: key !== undefined });
    const valueInput = el('textarea', { name: 'value' });
    valueInput.value = entry ? json(entry.value) : '';
    editor.replaceChildren(
      keyInput, valueInput,
      el('span', { className: 'muted' }, entry ? `if still at revision ${entry.revision}` : 'create only'),
      el('button', { type: 'submit' }, 'Save'),
    );
    editor.onsubmit = async (event) => {
      event.preventDefault();
      let value;
      try {
        value = JSON.parse(valueInput.value);
      } catch {
        return say('the value is not JSON');
      }
      try {
        // Compare-and-set: a key changed since it was shown gives CONFLICT rather than overwriting that change.
        const result = await post('api/config/put', { key: keyInput.value, value, ifRevision: entry ? entry.revision : 0 });
        say(`saved at revision ${result.revision}`);
        editor.replaceChildren();
      } catch (e) {
        say(e.message);
      }
    };
  };
  view.replaceChildren(
    el('h2', {}, 'Config'),
    el('form', { className: 'bar', onsubmit: (e) => { e.preventDefault(); location.hash = `#config?prefix=${encodeURIComponent(e.target.prefix.value)}`; } },
      el('label', {}, 'prefix ', el('input', { name: 'prefix', value: prefix })), el('button', { type: 'submit' }, 'Show'),
      el('button', { type: 'button', id: 'config-new', onclick: () => edit(undefined) }, 'New key'),
      el('span', { id: 'watch-state', className: 'muted' }, 'connecting…')),
    editor,
    el('table', { id: 'config' }, el('thead', {}, el('tr', {}, ['name', 'key', 'value', 'revision', ''].map((h) => el('th', {}, h)))), body),
  );
  // The live view: a snapshot, then every change from a watch after its revision (server-sent events).
  const source = new EventSource(`api/config/watch?prefix=${encodeURIComponent(prefix)}`);
  const state = document.getElementById('watch-state');
  source.addEventListener('snapshot', (event) => {
    entries.clear();
    for (const entry of JSON.parse(event.data).entries) entries.set(entry.key, entry);
    state.textContent = 'live';
    render();
  });
  source.addEventListener('change', (event) => {
    const change = JSON.parse(event.data);
    if (change.type === 'put') entries.set(change.key, { key: change.key, value: change.value, revision: change.revision });
    else entries.delete(change.key);
    render(change.key);
  });
  source.addEventListener('failure', (event) => say(JSON.parse(event.data).message));
  source.onerror = () => (state.textContent = 'reconnecting…');
  return () => source.close();
}

async function secretsPage(view) {
  const { secrets, truncated } = await call('api/secrets');
  view.replaceChildren(
    el('h2', {}, 'Secrets'),
    el('p', { className: 'muted' }, 'Names and versions only. The console never reads a secret value; use the application or `stowage secrets get` where that is allowed.'),
    table(['name', 'versions'],
      secrets.map((s) => el('tr', { 'data-secret': s.name }, el('td', {}, s.name),
        el('td', {}, s.versions.map((v) => `v${v.version} ${when(v.createdAt)}${v.deleted ? ' (deleted)' : ''}${v.destroyed ? ' (destroyed)' : ''}`).join('; ')))),
      { id: 'secrets' }),
    truncated ? el('p', { className: 'muted' }, 'Only the first 200 names are shown.') : '',
  );
}

async function documentsPage(view, params) {
  const { collections } = await call('api/documents/collections');
  const current = params.get('collection') ?? collections[0] ?? '';
  const filter = params.get('filter') ?? '';
  const sort = params.get('sort') ?? '';
  const after = params.get('after') ?? '';
  const go = (changes) => {
    const next = new URLSearchParams({ collection: current, filter, sort, ...changes });
    for (const [k, v] of [...next]) if (v === '') next.delete(k);
    location.hash = `#documents?${next}`;
  };
  const form = el('form', { className: 'bar', id: 'documents-query', onsubmit: (e) => {
    e.preventDefault();
    go({ collection: e.target.collection.value, filter: e.target.filter.value, sort: e.target.sort.value, after: '' });
  } },
    el('select', { name: 'collection' }, collections.map((c) => el('option', { value: c, selected: c === current }, c))),
    el('input', { name: 'filter', value: filter, placeholder: '{"status": "open"}', size: 40 }),
    el('input', { name: 'sort', value: sort, placeholder: 'field:1,other:-1', size: 20 }),
    el('button', { type: 'submit' }, 'Find'));
  view.replaceChildren(el('h2', {}, 'Documents'), form);
  if (current === '') return view.append(el('p', { className: 'muted' }, 'No collections.'));
  const query = new URLSearchParams({ collection: current, limit: '20' });
  if (filter) query.set('filter', filter);
  if (sort) query.set('sort', sort);
  if (after) query.set('after', after);
  const page = await call(`api/documents?${query}`);
  view.append(
    el('p', { className: 'muted' }, `${page.total} matching`),
    table(['id', 'version', 'data'],
      page.items.map((d) => el('tr', { 'data-id': d.id }, el('td', {}, d.id), el('td', { className: 'num' }, d.version), el('td', {}, el('pre', { className: 'data' }, json(d.data))))),
      { id: 'documents' }),
    el('div', { className: 'bar' },
      after ? el('button', { onclick: () => go({ after: '' }) }, 'First page') : '',
      page.next ? el('button', { id: 'next-page', onclick: () => go({ after: page.next }) }, 'Next page') : ''),
  );
}

async function cachePage(view) {
  const info = await call('api/cache');
  const result = el('div', { id: 'cache-result' });
  view.replaceChildren(
    el('h2', {}, 'Cache'),
    el('p', { className: 'muted' }, `The ${info.backend} cache cannot list its keys; look one up.`),
    el('form', { className: 'bar', onsubmit: async (e) => {
      e.preventDefault();
      try {
        const r = await call(`api/cache?key=${encodeURIComponent(e.target.key.value)}`);
        result.replaceChildren(r.found ? el('pre', {}, json(r.value)) : el('p', { className: 'muted' }, 'not cached'));
      } catch (err) {
        say(err.message);
      }
    } }, el('input', { name: 'key', placeholder: 'key', size: 40 }), el('button', { type: 'submit' }, 'Get')),
    result,
  );
}

const PAGES = { doctor: doctorPage, queue: queuePage, config: configPage, secrets: secretsPage, documents: documentsPage, cache: cachePage };

async function route() {
  leave();
  leave = () => undefined;
  say('');
  const [name, query = ''] = location.hash.slice(1).split('?');
  const page = PAGES[name] ? name : 'doctor';
  for (const link of document.querySelectorAll('nav a[data-page]')) link.classList.toggle('active', link.dataset.page === page);
  const view = el('section', { id: `page-${page}` });
  main.replaceChildren(view);
  try {
    leave = (await PAGES[page](view, new URLSearchParams(query))) ?? (() => undefined);
  } catch (e) {
    say(e.message);
  }
  document.body.dataset.ready = page;
}

window.addEventListener('hashchange', route);
route();
