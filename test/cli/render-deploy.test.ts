// Proves the checked-in deploy/envoyfilter/*.yaml are what `wansteer render envoyfilter` makes
// today from examples/rules and examples/policies.yaml, so a change to the filter, the renderer
// or the examples that is not rendered again fails here. Render again with:
//   UPDATE_DEPLOY=1 npx vitest run test/cli/render-deploy.test.ts
import { readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { runRender } from '../../src/cli/render.js';
import { fromRoot } from '../../src/config/paths.js';

/** Each checked-in file and the arguments it is rendered with (the examples' mark class too). */
const DEPLOY_FILES = ['sidecar-inbound', 'sidecar-outbound', 'gateway'].map((context) => ({
  file: `deploy/envoyfilter/${context}.yaml`,
  argv: [
    'envoyfilter',
    '--rules', fromRoot('examples/rules'),
    '--policies', fromRoot('examples/policies.yaml'),
    '--mark-class', 'jason-on-fibre=reviews.default.svc.cluster.local/v2',
    '--context', context,
  ],
}));

describe('deploy/envoyfilter', () => {
  it.each(DEPLOY_FILES)('$file is up to date', async ({ file, argv }) => {
    let rendered = '';
    let stderr = '';
    const code = await runRender(argv, { stdout: (t) => (rendered += t), stderr: (t) => (stderr += t) });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    if (process.env.UPDATE_DEPLOY === '1') await writeFile(fromRoot(file), rendered);
    const checkedIn = await readFile(fromRoot(file), 'utf8').catch(() => '(missing)');
    expect(checkedIn, `${file} is stale: UPDATE_DEPLOY=1 npx vitest run test/cli/render-deploy.test.ts`).toBe(rendered);
  });
});
