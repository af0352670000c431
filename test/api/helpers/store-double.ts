/**
 * Test double of the PolicyStore: an in-memory map with the store's contract kept honestly:
 * compare-and-swap on `version` (a counter), and errors carrying `code` and `statusCode` as the
 * real store's do (the codes here are the double's own).
 */
import type { WanPolicy, WanPolicySpec } from '../../../src/policies/model.js';
import type { PolicyStore } from '../../../src/policies/store.js';

export class StoreErrorDouble extends Error {
  constructor(readonly code: string, readonly statusCode: number, message: string, readonly field?: string) {
    super(message);
  }
}

export class PolicyStoreDouble implements PolicyStore {
  private readonly policies = new Map<string, WanPolicy>();
  private counter = 0;
  /** When set, every write fails with it (a store I/O failure, for the 5xx path). */
  failWith: Error | undefined;

  constructor(private readonly knownLinks: readonly string[] = ['fibre', 'lte']) {}

  async ready(): Promise<void> {}

  list(): WanPolicy[] {
    return [...this.policies.values()];
  }

  get(name: string): WanPolicy | undefined {
    return this.policies.get(name);
  }

  async create(name: string, spec: WanPolicySpec): Promise<WanPolicy> {
    this.check(spec);
    if (this.policies.has(name)) throw new StoreErrorDouble('WS_POLICY_EXISTS', 409, `policy ${name} exists`);
    return this.put(name, spec);
  }

  async replace(name: string, spec: WanPolicySpec, ifMatch?: string): Promise<WanPolicy> {
    this.check(spec);
    this.current(name, ifMatch);
    return this.put(name, spec);
  }

  async delete(name: string, ifMatch?: string): Promise<void> {
    if (this.failWith) throw this.failWith;
    this.current(name, ifMatch);
    this.policies.delete(name);
  }

  subscribe(): () => void {
    return () => {};
  }

  async close(): Promise<void> {}

  private check(spec: WanPolicySpec): void {
    if (this.failWith) throw this.failWith;
    const unknown = spec.action.links.find((l) => !this.knownLinks.includes(l));
    if (unknown !== undefined) throw new StoreErrorDouble('WS_POLICY_UNKNOWN_LINK', 422, `no link named ${unknown}`, 'spec.action.links');
  }

  private current(name: string, ifMatch: string | undefined): WanPolicy {
    const existing = this.policies.get(name);
    if (!existing) throw new StoreErrorDouble('WS_POLICY_NOT_FOUND', 404, `no policy named ${name}`);
    if (ifMatch !== undefined && ifMatch !== existing.version) {
      throw new StoreErrorDouble('WS_POLICY_CONFLICT', 412, `policy ${name} is at version ${existing.version}, not ${ifMatch}`);
    }
    return existing;
  }

  private put(name: string, spec: WanPolicySpec): WanPolicy {
    const policy = { name, spec, version: String(++this.counter) };
    this.policies.set(name, policy);
    return policy;
  }
}
