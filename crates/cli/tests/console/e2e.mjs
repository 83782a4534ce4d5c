// End-to-end test of Kiln's web console in headless Chromium, against a real server started by
// crates/cli/tests/it/console.rs, which passes:
//   KILN_URL (http://127.0.0.1:PORT), KILN_TOKEN (the administrator's), KILN_WORK (a directory the
//   server may use), CENSUS_DIR (data/census), SCREENSHOTS (where the pages' screenshots go).
// Jobs are submitted and tokens made through the REST API, as a user would from the CLI; every
// check on the console is made in the page. Each step prints one line; any failure exits non-zero.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const URL = env('KILN_URL');
const ADMIN = env('KILN_TOKEN');
const WORK = env('KILN_WORK');
const CENSUS = env('CENSUS_DIR');
const SHOTS = env('SCREENSHOTS');
const WAIT = 60_000;
mkdirSync(SHOTS, { recursive: true });

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function rest(token, method, path, body) {
  const response = await fetch(`${URL}/v1/${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(answer)}`);
  return answer;
}

async function newToken(account, bindings) {
  const { secret } = await rest(ADMIN, 'POST', 'tokens', { serviceAccount: account });
  for (const [resource, role] of bindings) {
    const policy = await rest(ADMIN, 'GET', `${resource}:getIamPolicy`);
    policy.bindings = [...(policy.bindings || []), { role, members: [`serviceAccount:${account}`] }];
    await rest(ADMIN, 'POST', `${resource}:setIamPolicy`, { policy });
  }
  return secret;
}

const census = (extra) => [
  `--training_data_path=${join(CENSUS, 'adult.data.csv.gz')}`,
  `--validation_data_path=${join(CENSUS, 'adult.test.csv.gz')}`,
  `--schema=${join(CENSUS, 'schema.yaml')}`,
  ...extra,
];

/** A Python trainer that logs a line every 0.2 s for a minute (long enough to be followed and cancelled). */
function sleeperPackage() {
  const dir = join(WORK, 'sleeper', 'trainer');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, '__init__.py'), '');
  writeFileSync(join(dir, 'task.py'), [
    'import sys, time',
    'for tick in range(300):',
    '    print(f"tick {tick}", flush=True)',
    '    time.sleep(0.2)',
  ].join('\n'));
  return join(WORK, 'sleeper');
}

let step = 0;
async function run(name, body) {
  step += 1;
  const started = Date.now();
  await body();
  console.log(`ok ${step} - ${name} (${Date.now() - started} ms)`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(WAIT);
const pageErrors = [];
page.on('pageerror', (error) => pageErrors.push(error.message));
const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
const text = (selector) => page.locator(selector).innerText();
/** Waits until the text of `selector` satisfies `predicate`: the page must update itself. */
async function until(selector, predicate, what) {
  const deadline = Date.now() + WAIT;
  let seen = '(absent)';
  while (Date.now() < deadline) {
    seen = await page.locator(selector).first().innerText({ timeout: 1000 }).catch(() => '(absent)');
    if (seen !== '(absent)' && predicate(seen)) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what}: ${selector} shows ${JSON.stringify(seen.slice(0, 500))}`);
}
async function signIn(token) {
  await page.goto(`${URL}/`);
  await page.fill('#token', token);
  await page.click('form.login button[type=submit]');
  await page.waitForSelector('#member');
}
const state = (job) => `#jobs tr[data-job="${job}"] .badge`;

try {
  await run('a fresh visit asks for a token and refuses a wrong one', async () => {
    await page.goto(`${URL}/`);
    await page.waitForSelector('form.login');
    await page.fill('#token', 'kiln_wrong_token');
    await page.click('form.login button[type=submit]');
    await until('form.login .error', (t) => t.includes('not accepted'), 'wrong token message');
    check(await page.locator('#jobs').count() === 0, 'no jobs shown before signing in');
  });

  await run('the administrator signs in and lands on the jobs list', async () => {
    await page.fill('#token', ADMIN);
    await page.click('form.login button[type=submit]');
    await until('#member', (t) => t === 'serviceAccount:admin', 'identity');
    check(new globalThis.URL(page.url()).pathname === '/projects/default/jobs', `landed on ${page.url()}`);
    await page.waitForSelector('#no-jobs');
  });

  await run('a submitted job appears and reaches SUCCEEDED without a reload', async () => {
    await page.evaluate(() => { window.marker = 'same page'; });
    await rest(ADMIN, 'POST', 'projects/default/jobs', {
      jobId: 'census_1',
      trainingInput: {
        scaleTier: 'BASIC',
        masterConfig: { imageUri: 'gcr.io/cloud-ml-algos/wide_deep_learner_cpu' },
        args: census(['--num_epochs=3']),
        jobDir: join(WORK, 'census_1'),
        region: 'us-central1',
      },
    });
    await until(state('census_1'), (t) => t === 'SUCCEEDED', 'census_1 state');
    check(await page.evaluate(() => window.marker) === 'same page', 'the list updated in place');
    const requests = [];
    const record = (request) => { if (request.url().includes('/v1/')) requests.push(request.url()); };
    page.on('request', record);
    await page.waitForTimeout(3000);
    page.off('request', record);
    check(requests.length === 0, `an idle list asks nothing while its watch is open: ${requests}`);
    const row = await text('#jobs tr[data-job="census_1"]');
    check(row.includes('Training'), `type column: ${row}`);
    await shot('jobs');
  });

  await run('the job page draws its curves, logs and config', async () => {
    await page.click('#jobs a:text-is("census_1")');
    await page.waitForSelector('#curves figure[data-tag="loss"] path[data-run="train"]');
    const trainPoints = Number(await page.getAttribute('#curves figure[data-tag="loss"] path[data-run="train"]', 'data-points'));
    check(trainPoints >= 10, `loss curve has ${trainPoints} points`);
    const evalPoints = Number(await page.getAttribute('#curves figure[data-tag="accuracy"] path[data-run="eval"]', 'data-points'));
    check(evalPoints === 3, `one accuracy point per epoch, got ${evalPoints}`);
    await page.waitForSelector('#curves figure[data-tag="examples_per_second"]');
    await until('#logs', (t) => t.includes('exported to'), 'logs');
    check((await text('#config')).includes('wide_deep_learner_cpu'), 'config shows the image');
    check((await text('#facts')).includes(join(WORK, 'census_1', 'model')), 'export path shown');
    check(await page.locator('#cancel').count() === 0, 'no cancel on a finished job');
    await shot('job');
  });

  await run('a running job\'s logs are followed per replica, and it can be cancelled', async () => {
    await rest(ADMIN, 'POST', 'projects/default/jobs', {
      jobId: 'sleeper',
      trainingInput: {
        pythonModule: 'trainer.task',
        packageUris: [`file://${sleeperPackage()}`],
        jobDir: join(WORK, 'sleeper_out'),
        region: 'us-central1',
      },
    });
    await page.goto(`${URL}/projects/default/jobs/sleeper`);
    await until('#logs', (t) => t.includes('tick 3'), 'first lines');
    await until('#logs', (t) => t.includes('tick 12'), 'later lines arrive in place');
    await page.click('#log-tabs button[data-task="master-replica-0"]');
    check((await text('#logs')).includes('tick 12'), 'the replica tab shows its lines');
    await page.click('#cancel');
    await page.click('dialog.confirm button.primary');
    await until('h1 .badge', (t) => t === 'CANCELLED', 'cancelled');
  });

  await run('jobs filter by state and name, with the filter in the URL', async () => {
    await page.goto(`${URL}/projects/default/jobs`);
    await page.waitForSelector(state('sleeper'));
    const order = await page.locator('#jobs tbody tr').evaluateAll((rows) => rows.map((row) => row.dataset.job));
    check(order.join() === 'sleeper,census_1', `newest first: ${order}`);
    await page.selectOption('#state-filter', 'CANCELLED');
    await page.waitForURL(/state=CANCELLED/);
    await page.waitForSelector(state('sleeper'));
    check(await page.locator(state('census_1')).count() === 0, 'census_1 filtered out');
    await page.goto(`${URL}/projects/default/jobs?name=cen`);
    await page.waitForSelector(state('census_1'));
    check(await page.locator(state('sleeper')).count() === 0, 'sleeper filtered out by name');
    check(await page.inputValue('#name-filter') === 'cen', 'the filter is read back from the URL');
  });

  // The quickstart's two instances, one JSON object per line.
  const instances = readFileSync(join(CENSUS, 'test.json'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
  let expected;
  await run('the export deploys from the model page as versions v1 and v2', async () => {
    await page.goto(`${URL}/projects/default/jobs/census_1`);
    await page.click('#facts a:text-is("Deploy…")');
    await page.waitForSelector('#deploying');
    await page.fill('#new-model', 'census');
    await page.fill('#new-model-description', 'Census income');
    await page.click('#create-model button[type=submit]');
    await page.waitForURL(/\/projects\/default\/models\/census/);
    check(await page.inputValue('#version-uri') === join(WORK, 'census_1', 'model'), 'the export path is filled in');
    await page.fill('#version-name', 'v1');
    await page.click('#create-version button[type=submit]');
    await until('#versions tr[data-version="v1"] .badge.state-READY', (t) => t === 'READY', 'v1 ready');
    check(await page.locator('#versions tr[data-version="v1"] .badge.default').count() === 1, 'the first version is the default');
    await page.fill('#version-name', 'v2');
    await page.fill('#version-uri', '');
    await page.selectOption('#version-job', { label: 'census_1' });
    await page.click('#create-version button[type=submit]');
    await until('#versions tr[data-version="v2"]', (t) => t.includes('READY'), 'v2 ready');
    await page.click('#versions tr[data-version="v2"] button.set-default');
    await until('#versions tr[data-version="v2"] .badge.default', (t) => t === 'default', 'v2 default');
    check(await page.locator('#versions tr[data-version="v1"] .badge.default').count() === 0, 'v1 no longer default');
    check(await page.locator('#versions tr[data-version="v1"] button.set-default').count() === 1, 'v1 can be made default again');
  });

  await run('the playground starts from the version\'s example instance', async () => {
    await page.waitForFunction(() => document.querySelector('#predict-input').value.includes('"age"'));
    const value = await page.inputValue('#predict-input');
    const example = JSON.parse(value);
    check(example.instances.length === 1 && typeof example.instances[0].workclass === 'string', `example ${value}`);
    await page.click('#predict button[type=submit]');
    await until('#predict-output', (t) => t.includes('predictions'), 'the example predicts');
  });

  await run('the playground predicts as the API does', async () => {
    expected = await rest(ADMIN, 'POST', 'projects/default/models/census/versions/v1:predict', { instances });
    await page.fill('#predict-input', JSON.stringify({ instances }));
    await page.selectOption('#predict-version', 'v1');
    await page.click('#predict button[type=submit]');
    await until('#predict-output', (t) => t.includes('predictions'), 'prediction');
    const shown = JSON.parse(await text('#predict-output'));
    check(JSON.stringify(shown) === JSON.stringify(expected), `playground ${JSON.stringify(shown)} vs API ${JSON.stringify(expected)}`);
    await page.fill('#predict-input', '{"instances": [');
    await page.click('#predict button[type=submit]');
    await until('#predict-output', (t) => t.startsWith('Not JSON'), 'bad JSON is named');
    await page.fill('#predict-input', '{"instances": [{"age": "old"}]}');
    await page.click('#predict button[type=submit]');
    await until('#predict-output', (t) => t.length > 0 && !t.includes('predictions') && t !== 'Predicting…', 'the server\'s error is shown');
    await page.fill('#predict-input', JSON.stringify({ instances }));
    await page.click('#predict button[type=submit]');
    await until('#predict-output', (t) => t.includes('predictions'), 'prediction again');
    await shot('model');
  });

  await run('a batch prediction job shows its type and counts', async () => {
    const input = join(WORK, 'batch.json');
    writeFileSync(input, `${instances.map((i) => JSON.stringify(i)).join('\n')}\n{bad\n`);
    await rest(ADMIN, 'POST', 'projects/default/jobs', {
      jobId: 'scored',
      predictionInput: { modelName: 'projects/default/models/census', dataFormat: 'JSON', inputPaths: [input], outputPath: join(WORK, 'scored') },
    });
    await page.goto(`${URL}/projects/default/jobs/scored`);
    await until('h1 .badge', (t) => t === 'SUCCEEDED', 'batch job finished');
    await until('#facts', (t) => t.includes('Batch prediction') && t.includes(`${instances.length} (errors: 1)`), 'counts');
    check((await text('#config')).includes('"dataFormat": "JSON"'), 'the prediction input is shown');
    await page.goto(`${URL}/projects/default/models/census`);
    await page.waitForSelector('#versions tr[data-version="v1"]');
  });

  await run('deleting a version asks first', async () => {
    await page.click('#versions tr[data-version="v1"] button.delete-version');
    await page.click('dialog.confirm button:text-is("Cancel")');
    await page.waitForTimeout(1600);
    check(await page.locator('#versions tr[data-version="v1"]').count() === 1, 'kept after Cancel');
    await page.click('#versions tr[data-version="v1"] button.delete-version');
    await page.click('dialog.confirm button.primary');
    await page.waitForSelector('#versions tr[data-version="v1"]', { state: 'detached' });
  });

  await run('a tuning job is submitted from the form, its YAML checked in place', async () => {
    await page.goto(`${URL}/projects/default/jobs`);
    await page.click('#submit-job');
    await page.waitForSelector('#submit-form');
    await page.fill('#job-id', '1bad');
    await page.selectOption('#algorithm', 'kiln/linear');
    await page.fill('#args', census(['--max_steps=150']).join('\n'));
    await page.fill('#job-dir', join(WORK, 'tuned'));
    await until('#job-id-error', (t) => t.includes('1bad'), 'the bad job id is named under its field');
    await page.fill('#job-id', 'tuned');
    await page.fill('#config', 'trainingInput:\n  hyperparameters:\n    goal: MAXIMIZE\n   maxTrials: 4\n');
    await until('#config-error', (t) => /Not YAML: line \d+, column \d+/.test(t), 'YAML syntax named by line and column');
    const spec = (minimum, trials = 'maxTrials') => [
      'trainingInput:',
      '  hyperparameters:',
      '    goal: MAXIMIZE',
      '    hyperparameterMetricTag: accuracy',
      `    ${trials}: 4`,
      '    maxParallelTrials: 2',
      '    params:',
      '      - parameterName: batch_size',
      '        type: DISCRETE',
      '        discreteValues: [16, 64, 256]',
      '      - parameterName: learning_rate',
      '        type: DOUBLE',
      `        ${minimum}`,
      '        scaleType: UNIT_LOG_SCALE',
    ].join('\n');
    await page.fill('#config', spec('minValue: 0.0001', 'maxTrial'));
    await until('#config-error', (t) => t.includes('maxTrial'), 'an unknown key is named');
    await page.fill('#config', spec('minValue: 0.0001'));
    await until('#config-error', (t) => t.startsWith('line 11:') && t.includes('params[1]') && t.includes('maxValue'),
      'the parameter without maxValue is named at its line');
    check(await text('#job-id-error') === '', 'the fixed job id has no message');
    await page.fill('#config', spec('minValue: 0.0001\n        maxValue: 0.1'));
    await until('#check-status', (t) => t === 'Ready to submit', 'the server accepts the job');
    check(await text('#config-error') === '', 'no message left');
    await shot('submit');
    await page.click('#submit');
    await page.waitForURL(/\/projects\/default\/jobs\/tuned$/);
    const job = await rest(ADMIN, 'GET', 'projects/default/jobs/tuned');
    check(job.trainingInput.masterConfig.imageUri === 'kiln/linear' && job.trainingInput.hyperparameters.maxTrials === 4,
      `submitted as given: ${JSON.stringify(job.trainingInput)}`);
  });

  await run('a tuning job shows its trials best first and the objective charts', async () => {
    await page.goto(`${URL}/projects/default/jobs/tuned`);
    await until('h1 .badge', (t) => t === 'SUCCEEDED', 'tuning job finished');
    await until('#trials', (t) => t.includes('Trials (MAXIMIZE accuracy)'), 'trials table');
    const rows = await page.locator('#trials tbody tr').evaluateAll((trs) => trs.map((tr) => ({
      trial: tr.dataset.trial, best: tr.classList.contains('best'),
      objective: Number(tr.children[2].innerText),
    })));
    check(rows.length === 4, `4 trials, got ${rows.length}`);
    check(rows[0].best && rows.filter((r) => r.best).length === 1, 'the first row alone is highlighted');
    check(rows.every((r) => r.objective <= rows[0].objective), `best first: ${JSON.stringify(rows)}`);
    const charts = await page.locator('#trial-charts figure').count();
    check(charts === 3, `objective by trial, by learning_rate and by batch_size: ${charts}`);
    check(await page.locator('#trial-charts circle.best').count() === 3, 'the best trial is marked on each chart');
    const trialRuns = await page.locator('#curves figure[data-tag="accuracy"] path').count();
    check(trialRuns === 4, `one accuracy curve per trial, got ${trialRuns}`);
    await shot('tuning');
    await page.goto(`${URL}/projects/default/jobs`);
    await until('#jobs tr[data-job="tuned"]', (t) => t.includes('Tuning'), 'tuning type in the list');
  });

  await run('a study\'s trials are listed best first and follow new trials live', async () => {
    const studies = 'projects/default/locations/us-central1/studies';
    await rest(ADMIN, 'POST', `${studies}?studyId=quadratic`, {
      studyConfig: {
        metrics: [{ metric: 'loss', goal: 'MINIMIZE' }],
        parameters: [{ parameter: 'x', type: 'DOUBLE', doubleValueSpec: { minValue: -2, maxValue: 2 } }],
      },
    });
    const finish = async () => {
      const { response } = await rest(ADMIN, 'POST', `${studies}/quadratic/trials:suggest`, { suggestionCount: 1, clientId: 'e2e' });
      const trial = response.trials[0];
      const x = trial.parameters[0].floatValue;
      await rest(ADMIN, 'POST', `${trial.name}:complete`,
        { finalMeasurement: { stepCount: '1', metrics: [{ metric: 'loss', value: (x - 0.5) ** 2 }] } });
      return (x - 0.5) ** 2;
    };
    const losses = [await finish(), await finish(), await finish()];
    await page.goto(`${URL}/projects/default/studies`);
    await page.click('#studies a:text-is("quadratic")');
    await page.waitForURL(/\/locations\/us-central1\/studies\/quadratic$/);
    await until('#trials', (t) => t.includes('Trials') || t.length > 0, 'trials drawn');
    await page.waitForSelector('#trials tbody tr');
    const rows = async () => page.locator('#trials tbody tr').evaluateAll((trs) => trs.map((tr) => ({
      best: tr.classList.contains('best'), loss: Number(tr.children[2].innerText),
    })));
    let shown = await rows();
    check(shown.length === 3 && shown[0].best, `three trials, the best first: ${JSON.stringify(shown)}`);
    check(Math.abs(shown[0].loss - Math.min(...losses)) < 1e-3, `the lowest loss first: ${JSON.stringify(shown)} vs ${losses}`);
    check(await page.locator('#trial-charts figure').count() === 2, 'loss by trial and by x');
    await finish();
    await until('#trials tbody', (t) => t.split('\n').length >= 4, 'a new trial appears without a reload');
    shown = await rows();
    check(shown.length === 4, `four trials: ${JSON.stringify(shown)}`);
    await shot('study');
  });

  await run('a two-objective study marks its Pareto front in the table and the chart', async () => {
    const studies = 'projects/default/locations/us-central1/studies';
    await rest(ADMIN, 'POST', `${studies}?studyId=front`, {
      studyConfig: {
        metrics: [{ metric: 'left', goal: 'MINIMIZE' }, { metric: 'right', goal: 'MINIMIZE' }],
        parameters: [{ parameter: 'x', type: 'DOUBLE', doubleValueSpec: { minValue: 0, maxValue: 1 } }],
      },
    });
    // Five trials of the client's own: the first three are the front, the last two dominated.
    const measured = [[0, 1], [1, 0], [0.5, 0.5], [0.8, 0.8], [1, 1]];
    for (const [i, [left, right]] of measured.entries()) {
      await rest(ADMIN, 'POST', `${studies}/front/trials`, {
        parameters: [{ parameter: 'x', floatValue: i / 4 }],
        finalMeasurement: { metrics: [{ metric: 'left', value: left }, { metric: 'right', value: right }] },
      });
    }
    const { trials: optimal } = await rest(ADMIN, 'POST', `${studies}/front/trials:listOptimalTrials`, {});
    check(optimal.length === 3, `the server's front: ${JSON.stringify(optimal)}`);
    await page.goto(`${URL}/projects/default/studies`);
    await page.click('#studies a:text-is("front")');
    await page.waitForURL(/\/locations\/us-central1\/studies\/front$/);
    await page.waitForSelector('#pareto figure circle');
    check(await page.locator('#pareto circle').count() === 5, 'every trial in the chart');
    check(await page.locator('#pareto circle.front').count() === 3, 'the front drawn apart');
    const rows = await page.locator('#trials tbody tr').evaluateAll((trs) => trs.map((tr) => ({
      trial: tr.dataset.trial, best: tr.classList.contains('best'),
    })));
    const front = optimal.map((t) => t.name.split('/').pop()).sort();
    check(JSON.stringify(rows.slice(0, 3).map((r) => r.trial).sort()) === JSON.stringify(front)
      && rows.every((r, i) => r.best === (i < 3)), `the optimal trials marked, first: ${JSON.stringify(rows)}`);
    await shot('pareto');
  });

  await run('a viewer sees jobs and models but no action', async () => {
    const viewer = await newToken('viewer', [['projects/default', 'roles/ml.viewer']]);
    await page.click('#sign-out');
    await page.waitForSelector('form.login');
    await signIn(viewer);
    await until('#member', (t) => t === 'serviceAccount:viewer', 'viewer identity');
    await page.waitForSelector(state('census_1'));
    check(await page.locator('#submit-job').count() === 0, 'no submit button for a viewer');
    await page.goto(`${URL}/projects/default/models`);
    await page.waitForSelector('#models tr[data-model="census"]');
    check(await page.locator('#create-model').count() === 0, 'no create form');
    await page.goto(`${URL}/projects/default/models/census`);
    await page.waitForSelector('#versions tr[data-version="v2"]');
    for (const selector of ['#create-version', '#delete-model', 'button.delete-version', 'button.set-default', '#predict']) {
      check(await page.locator(selector).count() === 0, `${selector} hidden from a viewer`);
    }
  });

  await run('a model user sees only its model, and may predict', async () => {
    const user = await newToken('app', [['projects/default/models/census', 'roles/ml.modelUser']]);
    await page.click('#sign-out');
    await signIn(user);
    await until('#jobs', (t) => t.includes('Permission') || t.includes('permission'), 'jobs list refused');
    check(await page.locator('#jobs table').count() === 0, 'no jobs shown');
    await page.goto(`${URL}/projects/default/models`);
    await until('#models', (t) => t.toLowerCase().includes('permission'), 'models list refused');
    await page.goto(`${URL}/projects/default/models/census`);
    await page.waitForSelector('#versions tr[data-version="v2"]');
    check(await page.locator('button.delete-version').count() === 0, 'no delete');
    await page.fill('#predict-input', JSON.stringify(instances));
    await page.click('#predict button[type=submit]');
    await until('#predict-output', (t) => t.includes('predictions'), 'the model user\'s prediction');
    check(JSON.stringify(JSON.parse(await text('#predict-output'))) === JSON.stringify(expected), 'same answer from the default version v2 (same export)');
    await shot('model-user');
  });

  await run('the administrator deletes the last version and the model', async () => {
    await page.click('#sign-out');
    await signIn(ADMIN);
    await page.goto(`${URL}/projects/default/models/census`);
    await page.click('#versions tr[data-version="v2"] button.delete-version');
    await page.click('dialog.confirm button.primary');
    await page.waitForSelector('#no-versions');
    await page.click('#delete-model');
    await page.click('dialog.confirm button.primary');
    await page.waitForURL(/\/projects\/default\/models$/);
    await page.waitForSelector('#no-models');
    await shot('models');
  });

  check(pageErrors.length === 0, `no script errors in the page: ${pageErrors.join('; ')}`);
  console.log(`all ${step} steps passed; screenshots in ${SHOTS}`);
} catch (error) {
  await shot('failure').catch(() => {});
  console.error(`not ok ${step} - ${error.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
