// Studies (the Vizier-style API): every location's studies, and one study's configuration and
// trials, best first, with the objective over trials and over each parameter, followed from the
// trials' watch. A study of several objectives marks the trials the server reports optimal (its
// Pareto front) and, for two objectives, charts them against each other.

import { get, post, seg } from './api.js';
import { objectiveCharts, paretoChart } from './chart.js';
import { badge, errorBox, fill, h, link, number, table, when } from './dom.js';

const studyUrl = (name) => `/${name.split('/').map(seg).join('/')}`;

export async function studiesView(main, { project }) {
  const body = h('div', { id: 'studies' });
  fill(main, h('h1', {}, 'Studies'), body);
  let answer;
  try {
    answer = await get(`projects/${seg(project)}/locations/-/studies`);
  } catch (error) {
    if (error.status === 401) throw error;
    return fill(body, errorBox(error));
  }
  const studies = answer.studies || [];
  fill(body, studies.length === 0
    ? h('p', { class: 'muted', id: 'no-studies' }, 'No studies yet. Create one through the API (projects.locations.studies.create).')
    : table(['Study', 'Location', 'State', 'Objectives', 'Parameters', 'Created'], studies.map((study) => {
      const [, , , location, , id] = study.name.split('/');
      return {
        dataset: { study: id },
        cells: [
          link(studyUrl(study.name), id),
          location,
          badge(study.state || ''),
          objectives(study).join(', '),
          (study.studyConfig?.parameters || []).map((p) => p.parameter).join(', '),
          when(study.createTime),
        ],
      };
    })));
}

/** `loss (MINIMIZE)` for each metric of the study. */
function objectives(study) {
  return (study.studyConfig?.metrics || []).map((m) => `${m.metric} (${m.goal})`);
}

/** Every parameter, children after their parent, each child with the parent values it needs. */
function flatParameters(specs, parent) {
  return (specs || []).flatMap((spec) => {
    const when = spec.parentCategoricalValues || spec.parentIntValues || spec.parentDiscreteValues;
    const name = parent ? `${parent} = ${when?.values?.join(' | ')} → ${spec.parameter}` : spec.parameter;
    return [{ ...spec, label: name }, ...flatParameters(spec.childParameterSpecs, spec.parameter)];
  });
}

/** A parameter's range or values, as a user would write them. */
function domain(spec) {
  const range = spec.doubleValueSpec || spec.integerValueSpec;
  if (range) return `${range.minValue} … ${range.maxValue}${spec.scaleType ? ` (${spec.scaleType})` : ''}`;
  return (spec.categoricalValueSpec?.values || spec.discreteValueSpec?.values || []).join(', ');
}

/** A trial parameter's value, whichever field holds it. */
function valueOf(parameter) {
  return parameter?.floatValue ?? parameter?.intValue ?? parameter?.stringValue;
}

export async function studyView(main, { project, location, study: studyId }, page) {
  const path = `projects/${seg(project)}/locations/${seg(location)}/studies/${seg(studyId)}`;
  const study = await get(path);
  const config = study.studyConfig || {};
  const metrics = config.metrics?.length ? config.metrics : [{ metric: 'objective', goal: 'MAXIMIZE' }];
  const goals = metrics.filter((m) => !m.safetyConfig);
  const metric = goals[0] || metrics[0];
  const parameters = flatParameters(config.parameters);
  const trials = h('div', { id: 'trials' });
  const charts = h('div', { class: 'charts', id: 'trial-charts' });
  const pareto = h('div', { class: 'charts', id: 'pareto' });
  fill(main,
    h('p', { class: 'muted' }, link(`/projects/${seg(project)}/studies`, '← Studies')),
    h('h1', {}, studyId, badge(study.state || '')),
    h('dl', { class: 'facts', id: 'facts' },
      h('dt', {}, 'Objectives'), h('dd', {}, objectives(study).join(', ')),
      h('dt', {}, 'Algorithm'), h('dd', {}, config.algorithm || 'ALGORITHM_UNSPECIFIED'),
      h('dt', {}, 'Created'), h('dd', {}, when(study.createTime))),
    h('h2', {}, 'Parameters'),
    table(['Parameter', 'Type', 'Values'], parameters.map((p) => [p.label, p.type, domain(p)])),
    h('h2', {}, goals.length > 1 ? 'Trials (the Pareto front first)' : `Trials (${metric.goal} ${metric.metric})`),
    trials, pareto, charts);

  const valueOfMetric = (trial, name) => {
    const found = trial.finalMeasurement?.metrics?.find((m) => m.metric === name);
    return found ? Number(found.value) : undefined;
  };
  const score = (trial) => valueOfMetric(trial, metric.metric);
  page.watch(`${path}/trials:watch`, {
    async trials(answer) {
      const list = answer.trials || [];
      const scored = list.filter((t) => score(t) !== undefined);
      // Which trials are optimal is the server's answer (listOptimalTrials), not worked out here.
      const optimal = goals.length > 1
        ? new Set(((await post(`${path}/trials:listOptimalTrials`, {})).trials || []).map((t) => t.name))
        : null;
      const sign = metric.goal === 'MINIMIZE' ? 1 : -1;
      const rank = optimal ? (t) => (optimal.has(t.name) ? 0 : 1) : () => 0;
      const ordered = [...scored].sort((a, b) => rank(a) - rank(b) || sign * (score(a) - score(b)))
        .concat(list.filter((t) => score(t) === undefined));
      const best = optimal || new Set(scored.length ? [ordered[0].name] : []);
      const names = parameters.map((p) => p.parameter);
      const trialNumber = (trial) => trial.name.split('/').pop();
      fill(trials, list.length === 0 ? h('p', { class: 'muted', id: 'no-trials' }, 'No trials yet: a client asks for them with trials:suggest.')
        : table(['Trial', 'State', ...metrics.map((m) => m.metric), 'Steps', ...names, 'Client'], ordered.map((t) => ({
          class: best.has(t.name) ? 'best' : undefined,
          dataset: { trial: trialNumber(t) },
          cells: [trialNumber(t), badge(t.state || ''), ...metrics.map((m) => number(valueOfMetric(t, m.metric) ?? '')),
            t.finalMeasurement?.stepCount ?? '',
            ...names.map((n) => number(valueOf(t.parameters?.find((p) => p.parameter === n)) ?? '')),
            t.trialInfeasible ? `infeasible: ${t.infeasibleReason || ''}` : (t.clientId || '')],
        })), { numeric: [...metrics.map((_, i) => 2 + i), 2 + metrics.length] }));
      const both = goals.length === 2
        ? scored.filter((t) => valueOfMetric(t, goals[1].metric) !== undefined) : [];
      fill(pareto, both.length === 0 ? null : paretoChart(`${goals[0].metric} against ${goals[1].metric}`,
        both.map((t) => ({
          x: score(t), y: valueOfMetric(t, goals[1].metric), label: `trial ${trialNumber(t)}`, front: best.has(t.name),
        }))));
      fill(charts, scored.length === 0 ? null : objectiveCharts(metric.metric,
        scored.map((t) => ({
          id: trialNumber(t), objective: score(t), best: best.has(t.name),
          values: Object.fromEntries((t.parameters || []).map((p) => [p.parameter, valueOf(p)])),
        })),
        parameters.map((p) => ({
          name: p.parameter, categorical: p.type === 'CATEGORICAL', categories: p.categoricalValueSpec?.values,
        }))));
    },
    errors: trials,
  });
}
