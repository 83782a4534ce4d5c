// The models list, paged, and a form to create one.

import { allowed, get, post, seg } from './api.js';
import { errorBox, fill, h, link, navigate, table } from './dom.js';

const REFRESH_MS = 3000;
const PAGE_SIZE = 50;

export async function modelsView(main, { project, query }, page) {
  const deploy = query.get('deploy') || '';
  const pageToken = query.get('page') || '';
  const carry = deploy ? `?deploy=${encodeURIComponent(deploy)}` : '';
  const rights = await allowed(`projects/${seg(project)}`, ['ml.models.create']);
  const body = h('div', { id: 'models' });
  const pager = h('div', { class: 'pager' });
  const problem = h('div');
  const name = h('input', { id: 'new-model', placeholder: 'model_name', required: true, pattern: '[A-Za-z][A-Za-z0-9_]*' });
  const description = h('input', { id: 'new-model-description', placeholder: 'Description (optional)' });
  const create = rights.has('ml.models.create')
    ? h('form', {
      class: 'inline panel', id: 'create-model',
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const model = await post(`projects/${seg(project)}/models`, { name: name.value.trim(), description: description.value.trim() });
          navigate(`/projects/${seg(project)}/models/${seg(model.name.split('/').pop())}${carry}`);
        } catch (error) {
          fill(problem, errorBox(error));
        }
      },
    }, h('strong', {}, 'New model'), name, description, h('button', { type: 'submit', class: 'primary' }, 'Create'))
    : null;
  fill(main, h('h1', {}, 'Models'),
    deploy ? h('p', { class: 'panel', id: 'deploying' }, 'Deploying ', h('code', {}, deploy), ': open a model (or create one) to add it as a version.') : null,
    create, problem, body, pager);

  await page.every(REFRESH_MS, async () => {
    let answer;
    try {
      const params = new URLSearchParams({ pageSize: PAGE_SIZE });
      if (pageToken) params.set('pageToken', pageToken);
      answer = await get(`projects/${seg(project)}/models?${params}`);
    } catch (error) {
      if (error.status === 401) throw error;
      fill(body, errorBox(error));
      return error.status !== 403;
    }
    const models = answer.models || [];
    fill(body, models.length === 0
      ? h('p', { class: 'muted', id: 'no-models' }, 'No models yet.')
      : table(['Name', 'Default version', 'Description'], models.map((model) => {
        const short = model.name.split('/').pop();
        return {
          dataset: { model: short },
          cells: [
            link(`/projects/${seg(project)}/models/${seg(short)}${carry}`, short),
            model.defaultVersion?.name?.split('/').pop() ?? '',
            model.description ?? '',
          ],
        };
      })));
    const here = (page) => `/projects/${seg(project)}/models?${new URLSearchParams({ ...(deploy ? { deploy } : {}), ...(page ? { page } : {}) })}`;
    fill(pager,
      pageToken ? link(here(''), 'First page') : null,
      answer.nextPageToken ? link(here(answer.nextPageToken), 'Next page') : null);
    return true;
  });
}
