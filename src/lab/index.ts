/**
 * Network-namespace labs for the demo, the tests and the benchmarks (not a command: cli/demo,
 * bench/ and test/ use it). Two profiles, after the two kinds of WAN link (docs/architecture.md):
 * overlay (overlay.ts: the edge's addresses valid on both links) and internet (internet.ts: an
 * edge node with NAT, two ISPs each with its own subnet and source filtering).
 */
import { fromRoot } from '../config/paths.js';

export { Lab, reapStaleLabs, sh } from './namespaces.js';
export { CLOUD, EDGE, WanLab } from './overlay.js';
export { IngressCounters, type FlowMatch } from './counters.js';
export { DelayLine } from './delay-line.js';
export { bytesAt, goodputGap, GoodputMeter, startUploads, type Gap, type GapOptions, type GoodputSample, type UploadOptions } from './goodput.js';
export { LabAgentClient, type LabAnswer, type LabLinkView, type LabRequest } from './agent-client.js';
export { ENVOY_MODULE_DIR, ENVOY_VERSION, envoyBinary, LabEnvoy, type LabEnvoyOptions } from './envoy.js';
export { meshBootstrap, routesFromVirtualService, type ClusterSpec, type ListenerSpec, type MeshSpec, type RouteSpec } from './envoy-mesh.js';

/** The traffic tool (python3: it can set IP_TOS, which Node cannot). */
export const TRAFFIC_TOOL = fromRoot('scripts/traffic.py');
export { EdgeLab, INTERNET_CLOUD, ISPS, ISP_OF, IspCounters, NODE_PORT, POD_PORT, PODS, type ByteCount, type IspFlow, type IspName, type WanName } from './internet.js';
export { EdgeRig, SESSION_PORT, SESSIONS_TOOL, type ExchangeResult, type Place } from './edge-rig.js';
export { EDGE_POD, NODE_PORTS, POD_SERVICE_PORT, type WanLabOptions } from './overlay.js';
export { OverlayCounters, type OverlayFlow } from './overlay-counters.js';
export { CLOUD_SESSION_PORTS, OverlayRig, type OverlayPlace, type OverlayRigOptions, type SessionLoop } from './overlay-rig.js';
