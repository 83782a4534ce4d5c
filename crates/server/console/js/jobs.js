// The jobs list, newest first: state and name filters and pages in the URL, refreshed while on screen.

import { allowed, seg } from './api.js';
import { badge, duration, fill, h, link, navigate, number, pageLinks, table, when, withQuery } from './dom.js';

const STATES = ['QUEUED', 'PREPARING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLING', 'CANCELLED'];
const PAGE_SIZE = 50;

/** Training, tuning or batch prediction. */
export function jobType(job) {
  if (job.predictionInput) return 'Batch prediction';
  if (job.trainingInput?.hyperparameters) return 'Tuning';
  return 'Training';
}

/** The list filter for a state and a job id pattern (`census` matches ids starting with it), the
 * pattern quoted so that whatever is typed stays one value. */
function filterOf(state, name) {
  const quoted = (text) => `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  const terms = [];
  if (state) terms.push(`state:${state}`);
  if (name) terms.push(`jobId:${quoted(name.endsWith('*') ? name : `${name}*`)}`);
  return terms.join(' AND ');
}

export async function jobsView(main, { project, query }, page) {
  const state = query.get('state') || '';
  const name = query.get('name') || '';
  const pageToken = query.get('page') || '';
  const here = (changes) => withQuery(`/projects/${seg(project)}/jobs`, { state, name, page: pageToken, ...changes });
  const stateSelect = h('select', { id: 'state-filter', 'aria-label': 'State', onchange: () => navigate(here({ state: stateSelect.value, page: '' })) },
    h('option', { value: '' }, 'All states'),
    STATES.map((s) => h('option', { value: s, selected: s === state }, s)));
  const nameInput = h('input', { id: 'name-filter', type: 'search', placeholder: 'Job ID starts with…', value: name });
  const filters = h('form', {
    class: 'toolbar',
    onsubmit: (event) => { event.preventDefault(); navigate(here({ name: nameInput.value.trim(), page: '' })); },
  }, stateSelect, nameInput, h('button', { type: 'submit' }, 'Filter'));
  const body = h('div', { id: 'jobs' });
  const pager = h('div', { class: 'pager' });
  const rights = await allowed(`projects/${seg(project)}`, ['ml.jobs.create']);
  const submit = rights.has('ml.jobs.create')
    ? h('button', { type: 'button', id: 'submit-job', class: 'primary', onclick: () => navigate(`/projects/${seg(project)}/submit`) }, 'Submit a job')
    : null;
  fill(main, h('h1', {}, 'Jobs', submit), filters, body, pager);

  const filter = filterOf(state, name);
  const params = new URLSearchParams({ pageSize: PAGE_SIZE, orderBy: 'createTime desc' });
  if (filter) params.set('filter', filter);
  if (pageToken) params.set('pageToken', pageToken);
  page.watch(`projects/${seg(project)}/jobs:watch?${params}`, {
    jobs(answer) {
      const jobs = answer.jobs || [];
      fill(body, jobs.length === 0
        ? h('p', { class: 'muted', id: 'no-jobs' }, filter ? 'No job matches.' : 'No jobs yet: submit one here or with `kiln jobs submit training`.')
        : table(['Job ID', 'Type', 'State', 'Created', 'Duration', 'ML units'], jobs.map((job) => ({
          dataset: { job: job.jobId },
          cells: [
            link(`/projects/${seg(project)}/jobs/${seg(job.jobId)}`, job.jobId),
            jobType(job),
            badge(job.state),
            when(job.createTime),
            duration(job.startTime, job.endTime),
            number(job.trainingOutput?.consumedMLUnits ?? '', 3),
          ],
        })), { numeric: [5] }));
      pageLinks(pager, pageToken, answer.nextPageToken, (token) => here({ page: token }));
    },
    errors: body,
  });
}
