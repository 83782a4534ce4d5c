// One job: its facts, cancel, training curves, a tuning job's trials, its config, and its logs per
// replica, followed from the job's watch while it runs.

import { allowed, post, seg } from './api.js';
import { lineChart, objectiveCharts } from './chart.js';
import { badge, confirmAction, duration, errorBox, fill, h, link, number, table, when } from './dom.js';
import { jobType } from './jobs.js';

const FINAL = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

export async function jobView(main, { project, job: jobId }, page) {
  const path = `projects/${seg(project)}/jobs/${seg(jobId)}`;
  const rights = await allowed(path, ['ml.jobs.cancel']);
  const title = h('h1', {}, jobId);
  const problem = h('div');
  const facts = h('div', { id: 'facts' });
  const curves = h('div', { id: 'curves', class: 'charts' });
  const trials = h('div', { id: 'trials' });
  const config = h('pre', { id: 'config' });
  const logs = logPanel();
  fill(main,
    h('p', { class: 'muted' }, link(`/projects/${seg(project)}/jobs`, '← Jobs')),
    title, problem, facts,
    h('h2', {}, 'Training curves'), curves,
    trials,
    h('h2', {}, 'Logs'), logs.node,
    h('h2', {}, 'Configuration'), config);

  drawCurves(curves, []);
  let last = '';
  let finished = false;
  page.watch(() => `${path}:watch?pageToken=${logs.next()}`, {
    job(job) {
      finished = FINAL.includes(job.state);
      const cancel = !finished && rights.has('ml.jobs.cancel')
        ? h('button', {
          type: 'button', id: 'cancel', class: 'danger',
          onclick: async () => {
            if (!await confirmAction(`Cancel ${jobId}?`, 'Its replicas are stopped; finished trials are kept.', 'Cancel job')) return;
            try { await post(`${path}:cancel`); } catch (error) { fill(problem, errorBox(error)); }
          },
        }, 'Cancel')
        : null;
      fill(title, jobId, badge(job.state), cancel);
      fill(facts, factList(project, job));
      const snapshot = JSON.stringify(job.trainingInput ?? job.predictionInput ?? {}, null, 2);
      if (snapshot !== last) { config.textContent = snapshot; last = snapshot; }
      drawTrials(trials, job);
    },
    logs: (answer) => logs.add(answer),
    metrics: (answer) => drawCurves(curves, answer.series || []),
    finished: () => finished,
    errors: problem,
  });
}

function factList(project, job) {
  const output = job.trainingOutput || {};
  const exported = output.builtInAlgorithmOutput?.modelPath;
  const rows = [
    ['Type', jobType(job)],
    ['Created', when(job.createTime)],
    ['Started', when(job.startTime)],
    ['Ended', when(job.endTime)],
    ['Duration', duration(job.startTime, job.endTime)],
    ['ML units', number(output.consumedMLUnits ?? 0, 3)],
    job.trainingInput?.jobDir ? ['Job directory', job.trainingInput.jobDir] : null,
    exported ? ['Exported model', h('span', {}, h('code', { id: 'export' }, exported), ' ',
      link(`/projects/${seg(project)}/models?deploy=${encodeURIComponent(exported)}`, 'Deploy…'))] : null,
    job.predictionOutput ? ['Predictions', `${job.predictionOutput.predictionCount ?? 0} (errors: ${job.predictionOutput.errorCount ?? 0})`] : null,
    job.predictionOutput?.outputPath ? ['Results', h('code', {}, job.predictionOutput.outputPath)] : null,
    job.predictionOutput ? ['Node hours', number(job.predictionOutput.nodeHours ?? 0, 3)] : null,
    job.jobPosition ? ['Queue position', job.jobPosition] : null,
    job.errorMessage ? ['Error', h('span', { class: 'error' }, job.errorMessage)] : null,
  ].filter(Boolean);
  return h('dl', { class: 'facts' }, rows.flatMap(([name, value]) => [h('dt', {}, name), h('dd', {}, value)]));
}

/** One chart per tag, one line per run (train / eval, or a trial's runs). */
function drawCurves(node, series) {
  if (series.length === 0) {
    fill(node, h('p', { class: 'muted' }, 'No curves yet: the built-in algorithms and any trainer that writes TensorBoard summaries under the job directory draw them here.'));
    return;
  }
  const byTag = new Map();
  for (const one of series) {
    if (!byTag.has(one.tag)) byTag.set(one.tag, []);
    byTag.get(one.tag).push({ name: one.run || '.', points: one.points });
  }
  fill(node, [...byTag].map(([tag, lines]) => lineChart(tag, lines)));
}

/** A tuning job's trials, best first as the server orders them, and the objective's charts. */
function drawTrials(node, job) {
  const spec = job.trainingInput?.hyperparameters;
  if (!spec) return fill(node);
  const trials = job.trainingOutput?.trials || [];
  const names = (spec.params || []).map((p) => p.parameterName);
  const metricTag = job.trainingOutput?.hyperparameterMetricTag || spec.hyperparameterMetricTag || 'objective';
  const scored = trials.filter((t) => t.finalMetric);
  const best = scored[0]?.trialId;
  const rows = trials.map((t) => ({
    class: t.trialId === best ? 'best' : undefined,
    dataset: { trial: t.trialId },
    cells: [t.trialId, badge(t.state || ''), number(t.finalMetric?.objectiveValue ?? ''), t.finalMetric?.trainingStep ?? '',
      ...names.map((n) => number(t.hyperparameters?.[n] ?? '')), t.isTrialStoppedEarly ? 'stopped early' : (t.errorMessage || '')],
  }));
  const charts = scored.length === 0 ? [] : objectiveCharts(metricTag,
    scored.map((t) => ({
      id: t.trialId, objective: Number(t.finalMetric.objectiveValue), best: t.trialId === best, values: t.hyperparameters || {},
    })),
    (spec.params || []).map((p) => ({
      name: p.parameterName, categorical: p.type === 'CATEGORICAL', categories: p.categoricalValues,
    })));
  fill(node,
    h('h2', {}, `Trials (${spec.goal || 'MAXIMIZE'} ${metricTag})`),
    trials.length === 0 ? h('p', { class: 'muted' }, 'No trial has started yet.')
      : table(['Trial', 'State', 'Objective', 'Step', ...names, 'Note'], rows, { numeric: [2, 3] }),
    h('div', { class: 'charts', id: 'trial-charts' }, charts));
}

/** The log viewer: a tab per replica, new lines appended as they arrive. */
function logPanel() {
  const entries = [];
  const tasks = new Set();
  let next = '0';
  let shown = '';
  const tabs = h('div', { class: 'tabs', id: 'log-tabs' });
  const pre = h('pre', { class: 'logs', id: 'logs' }, 'No log lines yet.');
  const draw = () => {
    fill(tabs, ['', ...[...tasks].sort()].map((task) => h('button', {
      type: 'button', class: task === shown ? 'active' : undefined, dataset: { task },
      onclick: () => { shown = task; draw(); },
    }, task || 'All replicas')));
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = entries
      .filter((e) => !shown || e.taskName === shown)
      .map((e) => `${e.timestamp?.slice(11, 19) ?? ''} ${shown ? '' : `[${e.taskName}] `}${e.message}`)
      .join('\n') || 'No log lines yet.';
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };
  return {
    node: h('div', {}, tabs, pre),
    /** The line the next watch starts from. */
    next: () => next,
    /** Appends a page of new entries. */
    add(page) {
      for (const entry of page.entries || []) { entries.push(entry); tasks.add(entry.taskName); }
      next = page.nextPageToken || next;
      draw();
    },
  };
}
