// Studies (the Vizier-style API): every location's studies, and one study's configuration and
// trials, best first, with the objective over trials and over each parameter, followed from the
// trials' watch.

import { get, seg } from './api.js';
import { objectiveCharts } from './chart.js';
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
  const metric = config.metrics?.[0] || { metric: 'objective', goal: 'MAXIMIZE' };
  const trials = h('div', { id: 'trials' });
  const charts = h('div', { class: 'charts', id: 'trial-charts' });
  fill(main,
    h('p', { class: 'muted' }, link(`/projects/${seg(project)}/studies`, '← Studies')),
    h('h1', {}, studyId, badge(study.state || '')),
    h('dl', { class: 'facts', id: 'facts' },
      h('dt', {}, 'Objectives'), h('dd', {}, objectives(study).join(', ')),
      h('dt', {}, 'Algorithm'), h('dd', {}, config.algorithm || 'ALGORITHM_UNSPECIFIED'),
      h('dt', {}, 'Created'), h('dd', {}, when(study.createTime))),
    h('h2', {}, 'Parameters'),
    table(['Parameter', 'Type', 'Values'], (config.parameters || []).map((p) => [p.parameter, p.type, domain(p)])),
    h('h2', {}, `Trials (${metric.goal} ${metric.metric})`), trials, charts);

  const score = (trial) => {
    const found = trial.finalMeasurement?.metrics?.find((m) => m.metric === metric.metric);
    return found ? Number(found.value) : undefined;
  };
  page.watch(`${path}/trials:watch`, {
    trials(answer) {
      const list = answer.trials || [];
      const sign = metric.goal === 'MINIMIZE' ? 1 : -1;
      const scored = list.filter((t) => score(t) !== undefined);
      const ordered = [...scored].sort((a, b) => sign * (score(a) - score(b)))
        .concat(list.filter((t) => score(t) === undefined));
      const best = scored.length ? ordered[0].name : '';
      const names = (config.parameters || []).map((p) => p.parameter);
      const trialNumber = (trial) => trial.name.split('/').pop();
      fill(trials, list.length === 0 ? h('p', { class: 'muted', id: 'no-trials' }, 'No trials yet: a client asks for them with trials:suggest.')
        : table(['Trial', 'State', metric.metric, 'Steps', ...names, 'Client'], ordered.map((t) => ({
          class: t.name === best ? 'best' : undefined,
          dataset: { trial: trialNumber(t) },
          cells: [trialNumber(t), badge(t.state || ''), number(score(t) ?? ''), t.finalMeasurement?.stepCount ?? '',
            ...names.map((n) => number(valueOf(t.parameters?.find((p) => p.parameter === n)) ?? '')),
            t.trialInfeasible ? `infeasible: ${t.infeasibleReason || ''}` : (t.clientId || '')],
        })), { numeric: [2, 3] }));
      fill(charts, scored.length === 0 ? null : objectiveCharts(metric.metric,
        scored.map((t) => ({
          id: trialNumber(t), objective: score(t), best: t.name === best,
          values: Object.fromEntries((t.parameters || []).map((p) => [p.parameter, valueOf(p)])),
        })),
        (config.parameters || []).map((p) => ({
          name: p.parameter, categorical: p.type === 'CATEGORICAL', categories: p.categoricalValueSpec?.values,
        }))));
    },
    errors: trials,
  });
}
