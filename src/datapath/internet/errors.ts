/**
 * Why an internet link could not be set up. Each error names the config field to change (or
 * the system package to install) and the fix; the agent prints it and exits with EX_CONFIG
 * before it serves, and nothing it half-installed is left behind.
 */
import { WansteerError } from '../../base/errors.js';
export const InternetErrorCode = {
  /** The link's interface does not exist in the agent's network namespace. */
  NO_INTERFACE: 'WS_INTERNET_NO_INTERFACE',
  /** The interface has no global address: there is nothing to masquerade to. */
  NO_ADDRESS: 'WS_INTERNET_NO_ADDRESS',
  /** An Ethernet link without a next hop, and none in the main table to take. */
  NO_NEXT_HOP: 'WS_INTERNET_NO_NEXT_HOP',
  /** The link's routing table holds someone else's routes. */
  TABLE_TAKEN: 'WS_INTERNET_TABLE_TAKEN',
  /** Someone else's `ip rule` sits at one of the agent's priorities. */
  RULE_TAKEN: 'WS_INTERNET_RULE_TAKEN',
  /** libnftables (the nftables package) is missing, or the kernel refused the table. */
  NFTABLES: 'WS_INTERNET_NFTABLES',
  /** `ip` refused a route or rule. */
  ROUTING: 'WS_INTERNET_ROUTING',
} as const;
export type InternetErrorCode = (typeof InternetErrorCode)[keyof typeof InternetErrorCode];

export class InternetLinkError extends WansteerError {
  override readonly name = 'InternetLinkError';
  constructor(
    readonly code: InternetErrorCode,
    /** The config field to change (`links[1].nextHop4`), or what to install. */
    override readonly field: string,
    readonly problem: string,
    readonly fix: string,
  ) {
    super(`${field}: ${problem}; fix: ${fix} (${code})`);
  }
}
