import type { Packet } from '../packet/packet.js';
import type { Interface } from '../link/interface.js';
import type { Logger } from '../log.js';
import { getU16, getU32 } from '../wire/bytes.js';
import { formatIp4 } from '../wire/addr.js';
import type { LogLevel } from './ast.js';

/**
 * A netfilter log line as Linux's nf_log_ipv4 writes it:
 * `prefixIN=eth0 OUT= SRC=.. DST=.. LEN=.. TOS=0x00 PREC=0x00 TTL=.. ID=.. [DF] PROTO=..`
 * then the transport fields.
 */
export function formatLogLine(prefix: string, pkt: Packet, inIf: Interface | null, outIf: Interface | null): string {
  const b = pkt.buf;
  const o = pkt.l3 >= 0 ? pkt.l3 : pkt.start;
  const hl = (b[o] & 0x0f) << 2;
  const tos = b[o + 1];
  const parts: string[] = [
    `${prefix}IN=${inIf?.name ?? ''}`,
    `OUT=${outIf?.name ?? ''}`,
    `SRC=${formatIp4(getU32(b, o + 12))}`,
    `DST=${formatIp4(getU32(b, o + 16))}`,
    `LEN=${getU16(b, o + 2)}`,
    `TOS=0x${(tos & 0x1e).toString(16).padStart(2, '0').toUpperCase()}`,
    `PREC=0x${(tos & 0xe0).toString(16).padStart(2, '0').toUpperCase()}`,
    `TTL=${b[o + 8]}`,
    `ID=${getU16(b, o + 4)}`,
  ];
  const fragWord = getU16(b, o + 6);
  if (fragWord & 0x8000) parts.push('CE');
  if (fragWord & 0x4000) parts.push('DF');
  if (fragWord & 0x2000) parts.push('MF');
  const fragOff = fragWord & 0x1fff;
  if (fragOff !== 0) parts.push(`FRAG:${fragOff}`);
  const proto = b[o + 9];
  const l4 = o + hl;
  const avail = pkt.end - l4;
  if (proto === 6) {
    parts.push('PROTO=TCP');
    if (fragOff === 0 && avail >= 20) {
      const f = b[l4 + 13];
      parts.push(`SPT=${getU16(b, l4)}`, `DPT=${getU16(b, l4 + 2)}`, `WINDOW=${getU16(b, l4 + 14)}`, `RES=0x${(b[l4 + 12] & 0x0e).toString(16).padStart(2, '0')}`);
      const names: [number, string][] = [[0x80, 'CWR'], [0x40, 'ECE'], [0x20, 'URG'], [0x10, 'ACK'], [0x08, 'PSH'], [0x04, 'RST'], [0x02, 'SYN'], [0x01, 'FIN']];
      for (const [bit, n] of names) if (f & bit) parts.push(n);
      parts.push(`URGP=${getU16(b, l4 + 18)}`);
    }
  } else if (proto === 17) {
    parts.push('PROTO=UDP');
    if (fragOff === 0 && avail >= 8) parts.push(`SPT=${getU16(b, l4)}`, `DPT=${getU16(b, l4 + 2)}`, `LEN=${getU16(b, l4 + 4)}`);
  } else if (proto === 1) {
    parts.push('PROTO=ICMP');
    if (fragOff === 0 && avail >= 4) {
      const type = b[l4];
      parts.push(`TYPE=${type}`, `CODE=${b[l4 + 1]}`);
      if ((type === 0 || type === 8) && avail >= 8) parts.push(`ID=${getU16(b, l4 + 4)}`, `SEQ=${getU16(b, l4 + 6)}`);
    }
  } else parts.push(`PROTO=${proto}`);
  if (pkt.mark !== 0) parts.push(`MARK=0x${(pkt.mark >>> 0).toString(16)}`);
  return parts.join(' ');
}

/**
 * Log lines to the stack's logger, rate-limited as Linux's net_ratelimit is
 * (10 lines, then one per 500 ms on average: a burst of 10 in every 5 s);
 * suppressed lines are counted and reported with the next one that passes.
 */
export class NfLogger {
  private windowStart = -Infinity;
  private inWindow = 0;
  suppressed = 0;
  intervalMs = 5000;
  burst = 10;

  constructor(
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {}

  log(prefix: string, level: LogLevel, pkt: Packet, inIf: Interface | null, outIf: Interface | null): void {
    const now = this.now();
    if (now - this.windowStart >= this.intervalMs) {
      this.windowStart = now;
      this.inWindow = 0;
    }
    if (this.inWindow >= this.burst) {
      this.suppressed++;
      return;
    }
    this.inWindow++;
    const line = formatLogLine(prefix, pkt, inIf, outIf);
    const obj: { nft: string; suppressed?: number } = { nft: line };
    if (this.suppressed > 0) {
      obj.suppressed = this.suppressed;
      this.suppressed = 0;
    }
    switch (level) {
      case 'emerg':
      case 'alert':
      case 'crit':
      case 'err':
        this.logger.error(obj, line);
        break;
      case 'warn':
        this.logger.warn(obj, line);
        break;
      case 'notice':
      case 'info':
        this.logger.info(obj, line);
        break;
      case 'debug':
        this.logger.debug(obj, line);
        break;
    }
  }
}
