// The models list, paged, and a form to create one.

import { allowed, post, seg } from './api.js';
import { errorBox, fill, h, link, navigate, pageLinks, table, withQuery } from './dom.js';

const PAGE_SIZE = 50;

export async function modelsView(main, { project, query }, page) {
  const deploy = query.get('deploy') || '';
  const pageToken = query.get('page') || '';
  const modelUrl = (name) => withQuery(`/projects/${seg(project)}/models/${seg(name)}`, { deploy });
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
          navigate(modelUrl(model.name.split('/').pop()));
        } catch (error) {
          fill(problem, errorBox(error));
        }
      },
    }, h('strong', {}, 'New model'), name, description, h('button', { type: 'submit', class: 'primary' }, 'Create'))
    : null;
  fill(main, h('h1', {}, 'Models'),
    deploy ? h('p', { class: 'panel', id: 'deploying' }, 'Deploying ', h('code', {}, deploy), ': open a model (or create one) to add it as a version.') : null,
    create, problem, body, pager);

  const params = new URLSearchParams({ pageSize: PAGE_SIZE });
  if (pageToken) params.set('pageToken', pageToken);
  page.watch(`projects/${seg(project)}/models:watch?${params}`, {
    models(answer) {
      const models = answer.models || [];
      fill(body, models.length === 0
        ? h('p', { class: 'muted', id: 'no-models' }, 'No models yet.')
        : table(['Name', 'Default version', 'Description'], models.map((model) => {
          const short = model.name.split('/').pop();
          return {
            dataset: { model: short },
            cells: [
              link(modelUrl(short), short),
              model.defaultVersion?.name?.split('/').pop() ?? '',
              model.description ?? '',
            ],
          };
        })));
      pageLinks(pager, pageToken, answer.nextPageToken,
        (token) => withQuery(`/projects/${seg(project)}/models`, { deploy, page: token }));
    },
    errors: body,
  });
}
