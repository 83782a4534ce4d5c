// The console's shell: sign-in, the header, and the router that maps each URL to a view.
//
// Views live at stable URLs — /projects/{p}/jobs, /projects/{p}/jobs/{job}, /projects/{p}/submit,
// /projects/{p}/models, /projects/{p}/models/{model}, /projects/{p}/studies,
// /projects/{p}/locations/{l}/studies/{s} — and are drawn by `render(main, params, page)`. A view
// keeps itself current with `page.watch(path, handlers)`, a stream of changes from the server;
// leaving the view closes its streams.

import { ApiError, get, setToken, token, watch } from './api.js';
import { errorBox, fill, h, link, navigate } from './dom.js';
import { jobsView } from './jobs.js';
import { jobView } from './job.js';
import { modelsView } from './models.js';
import { modelView } from './model.js';
import { studiesView, studyView } from './studies.js';
import { submitView } from './submit.js';

const ROUTES = [
  [/^\/projects\/([^/]+)\/jobs\/?$/, jobsView, ['project']],
  [/^\/projects\/([^/]+)\/jobs\/([^/]+)$/, jobView, ['project', 'job']],
  [/^\/projects\/([^/]+)\/models\/?$/, modelsView, ['project']],
  [/^\/projects\/([^/]+)\/models\/([^/]+)$/, modelView, ['project', 'model']],
  [/^\/projects\/([^/]+)\/submit$/, submitView, ['project']],
  [/^\/projects\/([^/]+)\/studies\/?$/, studiesView, ['project']],
  [/^\/projects\/([^/]+)\/locations\/([^/]+)\/studies\/([^/]+)$/, studyView, ['project', 'location', 'study']],
];

/** The header's section each view belongs to, by the URL's third segment. */
const SECTIONS = { submit: 'jobs', locations: 'studies' };

const main = document.getElementById('main');
let current = null;

/** The timers and state of the view on screen; `stop` ends them when the view is left. */
class Page {
  constructor() {
    this.timers = [];
    this.controllers = [];
    this.stopped = false;
  }

  /**
   * Follows a watch (`api.js`'s `watch`) until the view is left: `path` (or `path()`, asked at each
   * connection) names it, `handlers` take its events. When the server ends the stream it is
   * opened again, unless `handlers.finished?.()` says nothing more can change. An error is shown
   * in `handlers.errors` (a node), and the watch opened again a second later unless the server
   * refused it (a 4xx).
   */
  watch(path, handlers) {
    const controller = new AbortController();
    this.controllers.push(controller);
    const follow = async () => {
      while (!this.stopped) {
        try {
          await watch(typeof path === 'function' ? path() : path, handlers, controller.signal);
          if (handlers.finished?.()) return;
        } catch (error) {
          if (this.stopped) return;
          if (error instanceof ApiError && error.status === 401) return signIn('Your token is no longer accepted.');
          if (handlers.errors) fill(handlers.errors, errorBox(error));
          if (error.status < 500) return;
          await new Promise((resolve) => { this.timers.push(setTimeout(resolve, 1000)); });
        }
      }
    };
    follow();
  }

  stop() {
    this.stopped = true;
    this.timers.forEach(clearTimeout);
    this.controllers.forEach((controller) => controller.abort());
  }
}

function project() {
  return decodeURIComponent(location.pathname.split('/')[2] || '') || localStorage.getItem('kiln.project') || 'default';
}

function header(identity) {
  const p = project();
  localStorage.setItem('kiln.project', p);
  const segment = location.pathname.split('/')[3] || 'jobs';
  const section = SECTIONS[segment] || segment;
  const projectInput = h('input', {
    id: 'project', value: p, 'aria-label': 'Project', title: 'Project',
    onchange: () => navigate(`/projects/${encodeURIComponent(projectInput.value.trim() || 'default')}/${section}`),
  });
  fill(document.getElementById('nav'),
    link(`/projects/${encodeURIComponent(p)}/jobs`, 'Jobs'),
    link(`/projects/${encodeURIComponent(p)}/models`, 'Models'),
    link(`/projects/${encodeURIComponent(p)}/studies`, 'Studies'),
    h('label', { class: 'muted' }, 'Project ', projectInput));
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.textContent.toLowerCase() === section);
  }
  fill(document.getElementById('identity'),
    h('span', { id: 'member' }, identity.member),
    token() ? h('button', { type: 'button', id: 'sign-out', onclick: () => { setToken(''); signIn(); } }, 'Sign out') : null);
}

/** Asks for a token (the server printed the first one; `kiln auth tokens create` makes more). */
function signIn(message) {
  current?.stop();
  fill(document.getElementById('nav'));
  fill(document.getElementById('identity'));
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', placeholder: 'kiln_…' });
  const problem = h('p', { class: 'error', role: 'alert' }, message || '');
  const form = h('form', {
    class: 'login panel',
    onsubmit: async (event) => {
      event.preventDefault();
      setToken(input.value.trim());
      try {
        await get('whoami');
        route();
      } catch (error) {
        setToken('');
        problem.textContent = error.status === 401 ? 'This token is not accepted: it may be wrong, revoked or expired.' : error.message;
      }
    },
  },
  h('h1', {}, 'Sign in to Kiln'),
  h('p', { class: 'muted' }, 'Paste an access token: the administrator token the server printed at its first start, or one made with `kiln auth tokens create`.'),
  h('label', { for: 'token' }, 'Token'), input, problem,
  h('button', { class: 'primary', type: 'submit' }, 'Sign in'));
  fill(main, form);
  input.focus();
}

async function route() {
  current?.stop();
  let identity;
  try {
    identity = await get('whoami');
  } catch (error) {
    if (error.status === 401) return signIn(token() ? 'Your token is no longer accepted.' : '');
    return fill(main, errorBox(error));
  }
  if (!ROUTES.some(([pattern]) => pattern.test(location.pathname))) {
    return navigate(`/projects/${encodeURIComponent(project())}/jobs`, { replace: true });
  }
  header(identity);
  const page = new Page();
  current = page;
  for (const [pattern, view, names] of ROUTES) {
    const match = location.pathname.match(pattern);
    if (!match) continue;
    const params = Object.fromEntries(names.map((name, i) => [name, decodeURIComponent(match[i + 1])]));
    params.query = new URLSearchParams(location.search);
    fill(main, h('p', { class: 'muted' }, 'Loading…'));
    try {
      await view(main, params, page);
    } catch (error) {
      if (error.status === 401) return signIn('Your token is no longer accepted.');
      fill(main, errorBox(error));
    }
    return;
  }
}

window.addEventListener('popstate', route);
window.addEventListener('kiln:navigate', route);
route();
