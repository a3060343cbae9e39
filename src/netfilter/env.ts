import type { Packet } from '../packet/packet.js';
import type { Interface } from '../link/interface.js';
import type { Logger } from '../log.js';
import { getU16, getU32 } from '../wire/bytes.js';
import { formatIp4 } from '../wire/addr.js';
import type { LogLevel } from './ast.js';

/**
 * A netfilter log line as Linux's nf_log_syslog writes it for IPv4
 * (nf_log_ip_packet): `prefixIN=eth0 OUT= MAC=.. SRC=.. DST=.. LEN=.. TOS=0x00
 * PREC=0x00 TTL=.. ID=.. [CE] [DF] [MF] [FRAG:n] PROTO=..` then the transport's
 * fields, an ICMP error's quoted datagram in brackets, and MARK=; every field
 * followed by a space, the last one too, as printk gets it.
 */
export function formatLogLine(prefix: string, pkt: Packet, inIf: Interface | null, outIf: Interface | null): string {
  const b = pkt.buf;
  const o = pkt.l3 >= 0 ? pkt.l3 : pkt.start;
  let s = `${prefix}IN=${inIf?.name ?? ''} OUT=${outIf?.name ?? ''} `;
  // dump_ipv4_mac_header, for packets that came in: the link header's bytes
  // (dev->hard_header_len of them) when the device has one, else nothing.
  if (inIf !== null) {
    s += 'MAC=';
    if (inIf.linkType === 'ether' && o - ETH_HLEN >= 0) {
      for (let i = 0; i < ETH_HLEN; i++) s += (i > 0 ? ':' : '') + hex2(b[o - ETH_HLEN + i]);
    }
    s += ' ';
  }
  s += dumpIpv4(b, o, pkt.end, false);
  if (pkt.mark !== 0) s += `MARK=0x${(pkt.mark >>> 0).toString(16)} `;
  return s;
}

const ETH_HLEN = 14;

const hex2 = (v: number): string => v.toString(16).padStart(2, '0');
const HEX2 = (v: number): string => hex2(v).toUpperCase();

/** nf_log_syslog.c required_len[]: bytes an ICMP message of each type needs to be dumped. */
function icmpRequiredLen(type: number): number {
  switch (type) {
    case 0:
    case 8:
      return 4;
    case 3:
    case 4:
    case 5:
    case 11:
    case 12:
      return 8 + 20;
    case 13:
    case 14:
      return 20;
    case 17:
    case 18:
      return 12;
    default:
      return 0;
  }
}

/**
 * dump_ipv4_packet: the IP header at `o` and what follows, up to `end` (the
 * packet's end: "INCOMPLETE [n bytes]" counts from there). `inner` is the
 * datagram quoted by an ICMP error, which is not recursed into again.
 */
function dumpIpv4(b: Uint8Array, o: number, end: number, inner: boolean): string {
  if (end - o < 20) return 'TRUNCATED';
  const hl = (b[o] & 0x0f) << 2;
  const tos = b[o + 1];
  let s = `SRC=${formatIp4(getU32(b, o + 12))} DST=${formatIp4(getU32(b, o + 16))} `;
  // IPTOS_TOS_MASK 0x1e and IPTOS_PREC_MASK 0xe0.
  s += `LEN=${getU16(b, o + 2)} TOS=0x${HEX2(tos & 0x1e)} PREC=0x${HEX2(tos & 0xe0)} TTL=${b[o + 8]} ID=${getU16(b, o + 4)} `;
  const fragWord = getU16(b, o + 6);
  if (fragWord & 0x8000) s += 'CE ';
  if (fragWord & 0x4000) s += 'DF ';
  if (fragWord & 0x2000) s += 'MF ';
  const fragOff = fragWord & 0x1fff;
  if (fragOff !== 0) s += `FRAG:${fragOff} `;
  const proto = b[o + 9];
  const l4 = o + hl;
  const avail = end - l4;
  if (proto === 6) {
    s += 'PROTO=TCP ';
    if (fragOff !== 0) return s;
    if (avail < 20) return s + `INCOMPLETE [${avail} bytes] `;
    const f = b[l4 + 13];
    // RES: the four reserved bits of the flag word (TCP_RESERVED_BITS), shifted as Linux does (>> 22).
    s += `SPT=${getU16(b, l4)} DPT=${getU16(b, l4 + 2)} WINDOW=${getU16(b, l4 + 14)} RES=0x${hex2((b[l4 + 12] & 0x0f) << 2)} `;
    if (f & 0x80) s += 'CWR ';
    if (f & 0x40) s += 'ECE ';
    if (f & 0x20) s += 'URG ';
    if (f & 0x10) s += 'ACK ';
    if (f & 0x08) s += 'PSH ';
    if (f & 0x04) s += 'RST ';
    if (f & 0x02) s += 'SYN ';
    if (f & 0x01) s += 'FIN ';
    s += `URGP=${getU16(b, l4 + 18)} `;
  } else if (proto === 17 || proto === 136) {
    s += proto === 17 ? 'PROTO=UDP ' : 'PROTO=UDPLITE ';
    if (fragOff !== 0) return s;
    if (avail < 8) return s + `INCOMPLETE [${avail} bytes] `;
    s += `SPT=${getU16(b, l4)} DPT=${getU16(b, l4 + 2)} LEN=${getU16(b, l4 + 4)} `;
  } else if (proto === 1) {
    s += 'PROTO=ICMP ';
    if (fragOff !== 0) return s;
    if (avail < 8) return s + `INCOMPLETE [${avail} bytes] `;
    const type = b[l4];
    s += `TYPE=${type} CODE=${b[l4 + 1]} `;
    if (avail < icmpRequiredLen(type)) return s + `INCOMPLETE [${avail} bytes] `;
    switch (type) {
      case 0:
      case 8:
        s += `ID=${getU16(b, l4 + 4)} SEQ=${getU16(b, l4 + 6)} `;
        break;
      case 12:
        s += `PARAMETER=${b[l4 + 4]} `;
        break;
      case 5:
      case 3:
      case 4:
      case 11:
        if (type === 5) s += `GATEWAY=${formatIp4(getU32(b, l4 + 4))} `;
        if (!inner) s += `[${dumpIpv4(b, l4 + 8, end, true)}] `;
        // ICMP_FRAG_NEEDED carries the next hop's MTU.
        if (type === 3 && b[l4 + 1] === 4) s += `MTU=${getU16(b, l4 + 6)} `;
        break;
    }
  } else if (proto === 50 || proto === 51) {
    // ESP's SPI leads its header; AH's follows next header, length and 2 reserved bytes.
    s += proto === 50 ? 'PROTO=ESP ' : 'PROTO=AH ';
    if (fragOff !== 0) return s;
    const need = proto === 50 ? 8 : 12;
    if (avail < need) return s + `INCOMPLETE [${avail} bytes] `;
    s += `SPI=0x${getU32(b, l4 + (proto === 50 ? 0 : 4)).toString(16)} `;
  } else s += `PROTO=${proto} `;
  return s;
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
