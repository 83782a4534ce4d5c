// One model: its versions (state, framework, default badge), "Set as default", "Delete" with
// confirmation, a form that creates a version from a job's export or a path, and a predict
// playground.

import { allowed, del, get, post, seg } from './api.js';
import { badge, confirmAction, errorBox, fill, h, link, navigate, table, when } from './dom.js';

const PERMISSIONS = ['ml.versions.create', 'ml.versions.update', 'ml.versions.delete', 'ml.models.delete', 'ml.models.predict'];

export async function modelView(main, { project, model, query }, page) {
  const path = `projects/${seg(project)}/models/${seg(model)}`;
  const rights = await allowed(path, PERMISSIONS);
  const problem = h('div', { id: 'problem' });
  const versions = h('div', { id: 'versions' });
  const description = h('p', { class: 'muted' });
  const act = async (action) => {
    fill(problem);
    try { await action(); } catch (error) { fill(problem, errorBox(error)); }
  };
  const deleteModel = rights.has('ml.models.delete') ? h('button', {
    type: 'button', class: 'danger', id: 'delete-model',
    onclick: async () => {
      if (!await confirmAction(`Delete model ${model}?`, 'A model can be deleted once it has no versions left.')) return;
      await act(async () => { await del(path); navigate(`/projects/${seg(project)}/models`); });
    },
  }, 'Delete model') : null;
  const playground = rights.has('ml.models.predict') ? predictPanel(path) : null;
  fill(main,
    h('p', { class: 'muted' }, link(`/projects/${seg(project)}/models`, '← Models')),
    h('h1', {}, model, deleteModel), description, problem,
    h('h2', {}, 'Versions'), versions,
    rights.has('ml.versions.create') ? await createPanel(project, path, query.get('deploy') || '', act) : null,
    playground ? [h('h2', {}, 'Predict'), playground.node] : null);

  get(path).then((info) => { description.textContent = info.description || ''; }, () => {});
  page.watch(`${path}/versions:watch?pageSize=100`, {
    versions(answer) {
      const list = answer.versions || [];
      playground?.versions(list);
      fill(versions, list.length === 0 ? h('p', { class: 'muted', id: 'no-versions' }, 'No versions yet.')
        : table(['Version', 'State', 'Framework', 'Created', 'Deployment', ''], list.map((version) => versionRow(version))));
    },
    errors: versions,
  });

  function versionRow(version) {
    const short = version.name.split('/').pop();
    const versionPath = `${path}/versions/${seg(short)}`;
    const actions = h('span', { class: 'toolbar' },
      !version.isDefault && rights.has('ml.versions.update') && version.state === 'READY'
        ? h('button', { type: 'button', class: 'set-default', onclick: () => act(() => post(`${versionPath}:setDefault`)) }, 'Set as default')
        : null,
      rights.has('ml.versions.delete') ? h('button', {
        type: 'button', class: 'danger delete-version',
        onclick: async () => {
          if (await confirmAction(`Delete version ${short}?`, `The version ${short} of ${model} stops serving. This cannot be undone.`)) {
            await act(() => del(versionPath));
          }
        },
      }, 'Delete') : null);
    return {
      dataset: { version: short },
      cells: [
        h('span', {}, short, ' ', version.isDefault ? h('span', { class: 'badge default' }, 'default') : null),
        h('span', {}, badge(version.state), version.errorMessage ? h('div', { class: 'error' }, version.errorMessage) : null),
        version.framework ?? '',
        when(version.createTime),
        h('code', {}, version.deploymentUri ?? ''),
        actions,
      ],
    };
  }
}

/** Creates a version from a recent finished job's export or any path the server may read. */
async function createPanel(project, path, deploy, act) {
  const recent = new URLSearchParams({ pageSize: 100, filter: 'state:SUCCEEDED', orderBy: 'createTime desc' });
  const jobs = await get(`projects/${seg(project)}/jobs?${recent}`)
    .then((answer) => answer.jobs || []).catch(() => []);
  const exports = jobs
    .map((job) => [job.jobId, job.trainingOutput?.builtInAlgorithmOutput?.modelPath])
    .filter(([, modelPath]) => modelPath);
  const name = h('input', { id: 'version-name', placeholder: 'v1', required: true });
  const uri = h('input', { id: 'version-uri', placeholder: '/path/to/model', required: true, value: deploy, size: 48 });
  const source = h('select', {
    id: 'version-job', 'aria-label': 'From a job',
    onchange: () => { if (source.value) uri.value = source.value; },
  }, h('option', { value: '' }, 'From a job…'), exports.map(([jobId, modelPath]) => h('option', { value: modelPath }, jobId)));
  return h('form', {
    class: 'inline panel', id: 'create-version',
    onsubmit: (event) => {
      event.preventDefault();
      act(async () => {
        await post(`${path}/versions`, { name: name.value.trim(), deploymentUri: uri.value.trim() });
        name.value = '';
      });
    },
  }, h('strong', {}, 'New version'), name, source, uri, h('button', { type: 'submit', class: 'primary' }, 'Create'));
}

/** Sends JSON instances to the default version or a chosen one and shows the answer. Until the
 * user edits the request, it holds the addressed version's example (`.../versions/{v}/example`). */
function predictPanel(path) {
  let ready = [];
  let edited = false;
  let prefilled = '';
  const prefill = async () => {
    const name = target.value || ready.find((v) => v.isDefault)?.name.split('/').pop();
    if (edited || !name || name === prefilled) return;
    prefilled = name;
    try {
      const example = await get(`${path}/versions/${seg(name)}/example`);
      if (!edited && example.instances?.length) input.value = JSON.stringify(example, null, 2);
    } catch {
      prefilled = '';
    }
  };
  const target = h('select', { id: 'predict-version', 'aria-label': 'Version', onchange: prefill },
    h('option', { value: '' }, 'Default version'));
  const input = h('textarea', { id: 'predict-input', rows: 8, spellcheck: false, oninput: () => { edited = true; } },
    '{"instances": []}');
  const output = h('pre', { id: 'predict-output' }, 'The response appears here.');
  const send = async (event) => {
    event.preventDefault();
    let body;
    try {
      body = JSON.parse(input.value);
    } catch (error) {
      output.textContent = `Not JSON: ${error.message}`;
      return;
    }
    if (Array.isArray(body)) body = { instances: body };
    const url = target.value ? `${path}/versions/${seg(target.value)}:predict` : `${path}:predict`;
    output.textContent = 'Predicting…';
    try {
      output.textContent = JSON.stringify(await post(url, body), null, 2);
      output.classList.remove('error');
    } catch (error) {
      output.textContent = error.message;
      output.classList.add('error');
    }
  };
  return {
    node: h('form', { class: 'panel', id: 'predict', onsubmit: send },
      h('p', { class: 'muted' }, 'A JSON request body ({"instances": [...]}) or a JSON array of instances.'),
      input, h('div', { class: 'toolbar' }, target, h('button', { type: 'submit', class: 'primary' }, 'Predict')), output),
    versions(list) {
      ready = list.filter((v) => v.state === 'READY');
      prefill();
      const names = ready.map((v) => v.name.split('/').pop());
      const current = [...target.options].slice(1).map((o) => o.value);
      if (names.join() === current.join()) return;
      const chosen = target.value;
      fill(target, h('option', { value: '' }, 'Default version'), names.map((n) => h('option', { value: n, selected: n === chosen }, n)));
    },
  };
}
