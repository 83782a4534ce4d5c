// Building the page from data: every value goes in as text, never as HTML, so nothing a job or
// model name holds can run in the console.

/** Creates an element: h('a', {href: '/x', onclick: fn}, 'text', child, ...). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'style') Object.assign(node.style, value);
    else if (key in node && typeof value !== 'string') node[key] = value;
    else node.setAttribute(key, value === true ? '' : value);
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A state badge, coloured by state. */
export function badge(state) {
  return h('span', { class: `badge state-${state}`, dataset: { state } }, state);
}

/** A table with a header row; `rows` are arrays of cells (nodes or text) or {cells, class}. */
export function table(headers, rows, { numeric = [] } = {}) {
  const head = h('tr', {}, headers.map((name, i) =>
    h('th', { class: numeric.includes(i) ? 'num' : undefined }, name)));
  const body = rows.map((row) => {
    const { cells, class: rowClass, dataset } = Array.isArray(row) ? { cells: row } : row;
    return h('tr', { class: rowClass, dataset }, cells.map((cell, i) =>
      h('td', { class: numeric.includes(i) ? 'num' : undefined }, cell)));
  });
  return h('table', {}, h('thead', {}, head), h('tbody', {}, body));
}

/** Asks before something that cannot be undone; resolves to true when confirmed. */
export function confirmAction(title, text, action = 'Delete') {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'confirm' },
      h('h2', {}, title), h('p', {}, text),
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => dialog.close('cancel') }, 'Cancel'),
        h('button', { type: 'button', class: 'danger primary', onclick: () => dialog.close('ok') }, action)));
    dialog.addEventListener('close', () => { dialog.remove(); resolve(dialog.returnValue === 'ok'); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** `2026-11-22T01:02:03Z` as local date and time. */
export function when(timestamp) {
  if (!timestamp) return '';
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? timestamp : date.toLocaleString();
}

/** Elapsed time between two timestamps (the second defaults to now), as `1h 2m 3s`. */
export function duration(start, end) {
  if (!start) return '';
  const seconds = Math.max(0, Math.round(((end ? new Date(end) : new Date()) - new Date(start)) / 1000));
  const parts = [[Math.floor(seconds / 3600), 'h'], [Math.floor(seconds / 60) % 60, 'm'], [seconds % 60, 's']];
  const shown = parts.filter(([value], i) => value > 0 || i === 2);
  return shown.map(([value, unit]) => `${value}${unit}`).join(' ');
}

/** A number rounded for display. */
export function number(value, digits = 4) {
  if (value === undefined || value === null || value === '') return '';
  const n = Number(value);
  return Number.isFinite(n) ? String(Number(n.toPrecision(digits))) : String(value);
}

/** An error message in the page. */
export function errorBox(error) {
  return h('p', { class: 'error', role: 'alert' }, error.message || String(error));
}

/** Goes to `path` inside the console without reloading (the router in main.js draws it). */
export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  window.dispatchEvent(new Event('kiln:navigate'));
}

/** A link that navigates inside the console; a modified click opens it as usual. */
export function link(path, ...children) {
  return h('a', {
    href: path,
    onclick: (event) => {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      navigate(path);
    },
  }, ...children);
}

/** `path` with the non-empty `params` as its query string. */
export function withQuery(path, params) {
  const query = new URLSearchParams(Object.entries(params).filter(([, value]) => value)).toString();
  return query ? `${path}?${query}` : path;
}

/** Links to the first and the next page of a paged list showing page `current`. */
export function pageLinks(node, current, next, urlOf) {
  fill(node,
    current ? link(urlOf(''), 'First page') : null,
    next ? link(urlOf(next), 'Next page') : null);
}
