// Submitting a training or tuning job: a built-in algorithm or a Python package, its arguments,
// the scale tier, and gcloud's `--config` file as YAML (where a tuning job's hyperparameter spec
// goes). The form's fields override the file, as gcloud's flags do. While the user types, the
// server checks the job as it would create it (`jobs.create` with `validateOnly`), and each
// problem is shown under the field it names; YAML that does not parse is named by line and column.

import { ApiError, get, post, seg } from './api.js';
import { fill, h, link, navigate } from './dom.js';
import { load as loadYaml } from './js-yaml.mjs';

const TIERS = ['BASIC', 'STANDARD_1', 'PREMIUM_1', 'BASIC_GPU', 'BASIC_TPU', 'CUSTOM'];
const CHECK_AFTER_MS = 400;
const CONFIG_EXAMPLE = `trainingInput:
  hyperparameters:
    goal: MAXIMIZE
    hyperparameterMetricTag: accuracy
    maxTrials: 4
    maxParallelTrials: 2
    params:
      - parameterName: learning_rate
        type: DOUBLE
        minValue: 0.0001
        maxValue: 0.1
        scaleType: UNIT_LOG_SCALE`;

export async function submitView(main, { project }) {
  const jobs = `projects/${seg(project)}/jobs`;
  const algorithms = await get('builtInAlgorithms').then((answer) => answer.algorithms || [], () => []);
  const field = (id, control, label, hint) => {
    const message = h('p', { class: 'error field-error', id: `${id}-error`, role: 'alert' });
    return { control, message, node: h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('p', { class: 'muted hint' }, hint) : null, message) };
  };
  const fields = {
    jobId: field('job-id', h('input', { id: 'job-id', placeholder: 'census_1', required: true, autocomplete: 'off' }), 'Job ID'),
    algorithm: field('algorithm', h('select', { id: 'algorithm' },
      algorithms.map((a) => h('option', { value: a.imageUris[0] }, `${a.name} (${a.imageUris.join(', ')})`))), 'Built-in algorithm'),
    packagePath: field('package-path', h('input', { id: 'package-path', placeholder: '/path/to/trainer_package', size: 48 }), 'Package',
      'A directory holding the trainer package, an sdist or a wheel, on a path the server may read'),
    moduleName: field('module-name', h('input', { id: 'module-name', placeholder: 'trainer.task' }), 'Python module'),
    args: field('args', h('textarea', { id: 'args', rows: 4, spellcheck: false, placeholder: '--training_data_path=/data/train.csv\n--num_epochs=3' }), 'Arguments',
      'One per line, passed to the trainer as they are'),
    scaleTier: field('scale-tier', h('select', { id: 'scale-tier' }, TIERS.map((tier) => h('option', { value: tier }, tier))), 'Scale tier'),
    region: field('region', h('input', { id: 'region', value: 'us-central1' }), 'Region'),
    jobDir: field('job-dir', h('input', { id: 'job-dir', placeholder: '/path/to/output', size: 48 }), 'Job directory',
      'Where the trainer writes (passed as --job-dir); the project\'s workspace when empty'),
    config: field('config', h('textarea', { id: 'config', rows: 14, spellcheck: false, placeholder: CONFIG_EXAMPLE }), 'Configuration (YAML)',
      'The file gcloud takes as --config: a Job resource. A tuning job\'s trainingInput.hyperparameters goes here; the fields above override it.'),
  };
  const kinds = h('div', { class: 'toolbar', role: 'radiogroup', 'aria-label': 'Trainer' },
    ['builtin', 'package'].map((value) => h('label', {},
      h('input', { type: 'radio', name: 'kind', value, checked: value === 'builtin', onchange: () => { showKind(); changed(); } }),
      value === 'builtin' ? ' Built-in algorithm' : ' Python package')));
  const kind = () => main.querySelector('input[name=kind]:checked')?.value || 'builtin';
  const builtin = h('div', {}, fields.algorithm.node);
  const python = h('div', { hidden: true }, fields.packagePath.node, fields.moduleName.node);
  const showKind = () => { builtin.hidden = kind() !== 'builtin'; python.hidden = kind() !== 'package'; };
  const general = h('p', { class: 'error', id: 'submit-error', role: 'alert' });
  const status = h('span', { class: 'muted', id: 'check-status' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'submit' }, 'Submit');
  const form = h('form', {
    class: 'panel submit', id: 'submit-form', novalidate: true,
    oninput: () => changed(),
    onsubmit: async (event) => {
      event.preventDefault();
      const job = jobOf();
      if (!job) return;
      submit.disabled = true;
      try {
        const created = await post(jobs, job);
        navigate(`/projects/${seg(project)}/jobs/${seg(created.jobId)}`);
      } catch (error) {
        place(error);
      } finally {
        submit.disabled = false;
      }
    },
  },
  fields.jobId.node, h('div', { class: 'field' }, h('span', { class: 'label' }, 'Trainer'), kinds), builtin, python,
  fields.args.node,
  h('div', { class: 'row' }, fields.scaleTier.node, fields.region.node),
  fields.jobDir.node, fields.config.node,
  general, h('div', { class: 'toolbar' }, submit, status));
  fill(main, h('p', { class: 'muted' }, link(`/projects/${seg(project)}/jobs`, '← Jobs')), h('h1', {}, 'Submit a job'), form);

  /** Clears every message, then shows `messages` (field name → text) under their fields. */
  function show(messages) {
    for (const one of Object.values(fields)) one.message.textContent = '';
    general.textContent = '';
    for (const [name, text] of Object.entries(messages)) {
      const target = fields[name]?.message || general;
      target.textContent = target.textContent ? `${target.textContent}\n${text}` : text;
    }
  }

  /** The job the form describes, or null (with the reason shown) when the YAML does not parse. */
  function jobOf() {
    let job = {};
    const text = fields.config.control.value;
    if (text.trim()) {
      try {
        job = loadYaml(text);
      } catch (error) {
        const where = error.mark ? `line ${error.mark.line + 1}, column ${error.mark.column + 1}: ` : '';
        show({ config: `Not YAML: ${where}${error.reason || error.message}` });
        return null;
      }
      if (job === null || typeof job !== 'object' || Array.isArray(job)) {
        show({ config: 'The configuration must be a Job resource: a mapping such as trainingInput: …' });
        return null;
      }
    }
    job = { ...job, jobId: fields.jobId.control.value.trim() };
    const input = { ...(job.trainingInput || {}) };
    if (kind() === 'builtin') {
      input.masterConfig = { ...(input.masterConfig || {}), imageUri: fields.algorithm.control.value };
    } else {
      const path = fields.packagePath.control.value.trim();
      if (path) input.packageUris = [path.startsWith('/') ? `file://${path}` : path];
      const module = fields.moduleName.control.value.trim();
      if (module) input.pythonModule = module;
    }
    const args = fields.args.control.value.split('\n').map((line) => line.trim()).filter(Boolean);
    if (args.length > 0) input.args = args;
    input.scaleTier = fields.scaleTier.control.value;
    const region = fields.region.control.value.trim();
    if (region) input.region = region;
    const jobDir = fields.jobDir.control.value.trim();
    if (jobDir) input.jobDir = jobDir;
    job.trainingInput = input;
    return job;
  }

  /** Shows the server's refusal under the fields its problems name. */
  function place(error) {
    if (!(error instanceof ApiError)) return show({ general: error.message });
    const messages = {};
    for (const problem of error.message.split(/; (?=Field: )/)) {
      const name = fieldOf(problem);
      const text = name === 'config' ? withLine(problem) : problem;
      messages[name] = messages[name] ? `${messages[name]}\n${text}` : text;
    }
    show(messages);
  }

  /** `problem` with the line of the configuration it points at, where one can be found. */
  function withLine(problem) {
    const path = problem.match(/Field: training_input\.(\S+)/)?.[1];
    const line = path ? lineOf(fields.config.control.value, path) : 0;
    return line ? `line ${line}: ${problem}` : problem;
  }

  let timer = 0;
  let asked = 0;
  /** Checks the job a moment after the last change; an older answer never replaces a newer one. */
  function changed() {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const job = jobOf();
      if (!job) return;
      const ask = ++asked;
      status.textContent = 'Checking…';
      try {
        await post(`${jobs}?validateOnly=true`, job);
        if (ask === asked) { show({}); status.textContent = 'Ready to submit'; }
      } catch (error) {
        if (ask === asked) { place(error); status.textContent = ''; }
      }
    }, CHECK_AFTER_MS);
  }
}

/** The form field a problem of the server's is about. */
function fieldOf(problem) {
  const rules = [
    [/jobId|job_id/, 'jobId'],
    [/hyperparameters/, 'config'],
    [/master_config\.image_uri|imageUri/, 'algorithm'],
    [/package_uris|packageUris/, 'packagePath'],
    [/python_module|pythonModule/, 'moduleName'],
    [/training_input\.args/, 'args'],
    [/scale_tier|master_type|worker_|parameter_server_|evaluator_/, 'scaleTier'],
    [/job_dir|jobDir/, 'jobDir'],
    [/region/, 'region'],
  ];
  return rules.find(([pattern]) => pattern.test(problem))?.[1] || 'config';
}

/**
 * The line (from 1) of YAML `text` that a field path such as `hyperparameters.params[1].max_value`
 * points at, following its keys (in camelCase, as the file writes them) and list items down the
 * file; 0 when it cannot be followed.
 */
export function lineOf(text, path) {
  const lines = text.split('\n');
  let from = 0;
  for (const segment of path.split('.')) {
    const [, name, index] = segment.match(/^([A-Za-z_]+)(?:\[(\d+)\])?$/) || [];
    if (!name) return 0;
    const key = name.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
    const keyLine = lines.findIndex((line, i) => i >= from && new RegExp(`^\\s*(- )?${key}\\s*:`).test(line));
    if (keyLine < 0) return 0;
    from = keyLine;
    if (index !== undefined) {
      const first = lines.findIndex((line, i) => i > keyLine && /^\s*- /.test(line));
      const indent = first < 0 ? '' : lines[first].match(/^\s*/)[0];
      let seen = -1;
      const item = lines.findIndex((line, i) => i >= first && first >= 0
        && line.startsWith(`${indent}- `) && ++seen === Number(index));
      if (item < 0) return 0;
      from = item;
    }
  }
  return from + 1;
}
