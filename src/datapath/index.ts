/** The datapath facade: the only door to the BPF maps and programs. */
export { Datapath, FLOW_CHUNK, monotonicNs, removePins, type Counter, type Counters, type FlowEntry } from './datapath.js';
export { DatapathError, DatapathErrorCode } from './errors.js';
export type { FlowKey, FlowKeyView, LinkEntry, PolicyAction } from './codec.js';
export type { Attachment, LinkFraming } from './attach.js';
export type { LoadOptions } from './loader.js';
export { Reasons, type Reason, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT } from './abi.js';
export { testRun, type TestRun } from './test-run.js';
export { MemoryDatapath } from './memory.js';
export type { DatapathPort, FlowTableFill } from './port.js';
export type { MigrationReport, MapMigration } from './migration.js';
export { openCarrierReader, type CarrierReader } from './carrier.js';
export type { InternetRoutingPort } from './port.js';
export { InternetRouting } from './internet/routing.js';
export { MemoryInternetRouting } from './internet/memory.js';
export { InternetLinkError, InternetErrorCode } from './internet/errors.js';
export { internetLayout, type InternetLayout } from './internet/layout.js';
export { uninstallDatapath, type UninstallReport } from './uninstall.js';
export { openNeighbourTable, type NeighbourScope, type NeighbourTable } from './neighbours.js';
