/**
 * Mark mode through a real Envoy sidecar in a pod behind the node's NAT (internet links): Envoy
 * configured with exactly what `wansteer render envoyfilter --mark-class` renders opens the
 * upstream connections of the class's subset with the class's DSCP, and the node binds them to
 * the class's link before routing them — they leave by wan1 with wan1's address and their
 * answers come back by wan1 (counted in the ISPs); the other subset keeps the default link.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { fromRoot } from '../../src/config/paths.js';
import { runRender } from '../../src/cli/render.js';
import { parseVirtualService } from '../../src/routes/validate.js';
import { EdgeRig, INTERNET_CLOUD, IspCounters, LabAgentClient, LabEnvoy, meshBootstrap, PODS, routesFromVirtualService } from '../../src/lab/index.js';
import { describePrivileged } from '../helpers/privilege.js';
import { requireEnvoy } from '../helpers/tools.js';

const REVIEWS = 'reviews.default.svc.cluster.local';
const PORT = { v1: 9101, v2: 9102 };
const LISTENER = 15001;
const ADMIN = 15000;

const envoyTool = requireEnvoy();

describePrivileged('internet links: a pod\'s Envoy sidecar in mark mode', () => envoyTool.describe('in a real Envoy', () => {
  let rig: EdgeRig;
  let envoy: LabEnvoy | undefined;
  beforeAll(async () => {
    rig = await EdgeRig.start({ tag: 'envoy' });
    // The class the render gives reviews v2 (examples/policies.yaml: jason-on-fibre, DSCP 10), bound to LTE here.
    expect(rig.putPolicy('reviews-v2', { match: { dscp: 10 }, action: { links: ['wan1', 'wan0'], mode: 'redirect' } }).status).toBe(201);
    let out = '';
    const code = await runRender(
      ['envoyfilter', '--rules', fromRoot('examples/rules'), '--policies', fromRoot('examples/policies.yaml'), '--mark-class', `jason-on-fibre=${REVIEWS}/v2`,
        '--context', 'sidecar-outbound', '--agent-host', PODS.gateway4, '--agent-port', '9090'],
      { stdout: (t) => (out += t), stderr: () => {} },
    );
    expect(code).toBe(0);
    const docs = parseAllDocuments(out).map((d) => d.toJS() as unknown);
    const reviewsDoc = parseAllDocuments(readFileSync(fromRoot('examples/rules/reviews.yaml'), 'utf8'))[0]!.toJS();
    const vs = parseVirtualService(reviewsDoc, { origin: 'test', defaultNamespace: 'default' });
    const cluster = (_host: string, subset: string | undefined) => `outbound|80|${subset ?? ''}|${REVIEWS}`;
    const bootstrap = meshBootstrap(docs, {
      role: 'sidecar',
      workloadLabels: { 'wansteer.io/steer': 'true' },
      adminPort: ADMIN,
      listeners: [{ name: 'outbound-reviews', context: 'SIDECAR_OUTBOUND', address: '127.0.0.1', port: LISTENER, routes: routesFromVirtualService(vs, cluster) }],
      clusters: (['v1', 'v2'] as const).map((s) => ({ name: `outbound|80|${s}|${REVIEWS}`, address: INTERNET_CLOUD.v4, port: PORT[s] })),
    });
    await Promise.all((['v1', 'v2'] as const).map((s) => rig.lab.spawnReady(rig.lab.cloud, [process.execPath, fromRoot('scripts/ns-http.mjs'), 'serve', String(PORT[s])], `reviews ${s}`)));
    envoy = await LabEnvoy.start(rig.lab, rig.lab.pods.pod0, bootstrap, { adminPort: ADMIN });
  }, 90_000);
  afterAll(async () => {
    envoy?.stop();
    await rig?.stop();
  });

  it('jason\'s requests (reviews v2, the class of DSCP 10) leave by wan1 and come back by it; everyone else\'s keep wan0', () => {
    const counters = IspCounters.install(rig.lab, (['v1', 'v2'] as const).map((s) => ({ name: s, up: `tcp dport ${PORT[s]}`, down: `tcp sport ${PORT[s]}` })));
    const client = new LabAgentClient(rig.lab, rig.lab.pods.pod0, `http://127.0.0.1:${LISTENER}`);
    const body = 'x'.repeat(20_000);
    const answers = client.http(
      ...Array.from({ length: 5 }, () => ({ method: 'POST', path: '/reviews', headers: { host: 'reviews', 'end-user': 'jason' }, body })),
      ...Array.from({ length: 5 }, () => ({ method: 'POST', path: '/reviews', headers: { host: 'reviews', 'end-user': 'bob' }, body })),
    );
    expect(answers.map((a) => a.status), JSON.stringify(answers[0]) + envoy!.log.slice(-2000)).toEqual(new Array(10).fill(200));
    const c = counters.read();
    expect(c['v2|isp1|up']!.bytes).toBeGreaterThan(5 * 20_000);
    expect(c['v2|isp1|down']!.packets).toBeGreaterThan(0);
    expect(c['v2|isp0|up']!.bytes).toBe(0);
    expect(c['v1|isp0|up']!.bytes).toBeGreaterThan(5 * 20_000);
    expect(c['v1|isp1|up']!.bytes).toBe(0);
  });
}));
