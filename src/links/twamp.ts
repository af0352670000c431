/**
 * TWAMP-light test packets (RFC 5357, unauthenticated mode; the "light" reflector of its
 * Appendix I): a sender packet carries a sequence number and a send timestamp; the reflector
 * answers with its own sequence number and timestamps plus the sender's, byte for byte where
 * the RFC says so. Any standard TWAMP-light reflector answers our probes, and `wansteer
 * reflector` answers any standard sender.
 *
 *   sender (41 bytes, padded to the reflector's size so the path sees equal sizes both ways):
 *     0 seq u32 | 4 timestamp NTP 64 | 12 error estimate u16 | 14 padding
 *   reflector (41 bytes):
 *     0 seq u32 | 4 timestamp | 12 error estimate | 14 MBZ u16 | 16 receive timestamp |
 *     24 sender seq u32 | 28 sender timestamp | 36 sender error estimate | 38 MBZ u16 | 40 sender TTL
 */

export const TWAMP_PORT = 862;
export const PACKET_BYTES = 41;
/** S=0 (clock not synchronised), scale 0, multiplier 1: "error unknown, about a second". */
const ERROR_ESTIMATE = 0x0001;
/** Seconds from 1900-01-01 (NTP era 0) to 1970-01-01. */
const NTP_UNIX_OFFSET = 2_208_988_800n;

/** Wall clock as a 64-bit NTP timestamp. */
export function ntpNow(nowNs: bigint = BigInt(Date.now()) * 1_000_000n): bigint {
  const secs = nowNs / 1_000_000_000n + NTP_UNIX_OFFSET;
  const frac = ((nowNs % 1_000_000_000n) << 32n) / 1_000_000_000n;
  return ((secs & 0xffff_ffffn) << 32n) | frac;
}

/** Nanoseconds between two NTP timestamps (b - a). */
export function ntpDiffNs(a: bigint, b: bigint): bigint {
  return ((b - a) * 1_000_000_000n) >> 32n;
}

export function encodeSender(seq: number, timestamp: bigint, out: Buffer = Buffer.alloc(PACKET_BYTES)): Buffer {
  out.fill(0);
  out.writeUInt32BE(seq >>> 0, 0);
  out.writeBigUInt64BE(timestamp, 4);
  out.writeUInt16BE(ERROR_ESTIMATE, 12);
  return out;
}

export interface SenderPacket {
  seq: number;
  timestamp: bigint;
  errorEstimate: number;
}

export function decodeSender(b: Buffer): SenderPacket | null {
  if (b.length < 14) return null;
  return { seq: b.readUInt32BE(0), timestamp: b.readBigUInt64BE(4), errorEstimate: b.readUInt16BE(12) };
}

/** The reflector's answer to `sender` (received at `rxTimestamp`), padded to the sender's size. */
export function encodeReflected(seq: number, sender: SenderPacket, rxTimestamp: bigint, txTimestamp: bigint, size: number): Buffer {
  const out = Buffer.alloc(Math.max(PACKET_BYTES, Math.min(size, 1472)));
  out.writeUInt32BE(seq >>> 0, 0);
  out.writeBigUInt64BE(txTimestamp, 4);
  out.writeUInt16BE(ERROR_ESTIMATE, 12);
  out.writeBigUInt64BE(rxTimestamp, 16);
  out.writeUInt32BE(sender.seq >>> 0, 24);
  out.writeBigUInt64BE(sender.timestamp, 28);
  out.writeUInt16BE(sender.errorEstimate, 36);
  out.writeUInt8(255, 40); // sender TTL: Node cannot read the received TTL; 255 as an unknown
  return out;
}

export interface ReflectedPacket {
  seq: number;
  timestamp: bigint;
  rxTimestamp: bigint;
  senderSeq: number;
  senderTimestamp: bigint;
}

export function decodeReflected(b: Buffer): ReflectedPacket | null {
  if (b.length < PACKET_BYTES) return null;
  return {
    seq: b.readUInt32BE(0),
    timestamp: b.readBigUInt64BE(4),
    rxTimestamp: b.readBigUInt64BE(16),
    senderSeq: b.readUInt32BE(24),
    senderTimestamp: b.readBigUInt64BE(28),
  };
}
