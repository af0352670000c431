/**
 * Uninstall: take everything the agent put into the kernel away — the steering program (or, at
 * the cloud end, the reply-by-arrival programs) off each WAN interface, the pinned maps and programs, and the internet links' tables, rules and
 * nftables table. An agent that stops leaves all of it in force on purpose (traffic keeps its
 * steering, the next agent adopts it); this is for when wansteer leaves the node.
 */
import { rmdirSync } from 'node:fs';
import { detachEgress, detachIngress } from './attach.js';
import { removePins } from './datapath.js';
import { removeReplyPins } from './reply/reply-datapath.js';
import { InternetRouting } from './internet/routing.js';
import type { InternetLayout } from './internet/layout.js';

export interface UninstallReport {
  /** Interfaces our filter was taken off. */
  detached: string[];
  pinDir: string;
  internetLinks: number;
}

export function uninstallDatapath(opts: { pinDir: string; interfaces: readonly string[]; internet: InternetLayout | null }): UninstallReport {
  // Either hook may hold ours: egress (steering or replies), ingress (arrivals, at the cloud end).
  const detached = opts.interfaces.filter((ifname) => [detachEgress(ifname), detachIngress(ifname)].some(Boolean));
  removePins(opts.pinDir);
  removeReplyPins(opts.pinDir);
  try {
    rmdirSync(opts.pinDir);
  } catch {
    /* not there, or holds pins that are not ours */
  }
  if (opts.internet) InternetRouting.remove(opts.internet);
  return { detached, pinDir: opts.pinDir, internetLinks: opts.internet?.links.length ?? 0 };
}
