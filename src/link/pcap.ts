/**
 * Classic libpcap capture files: a writer any interface can feed on its hot path,
 * and a small reader for tests and replay.
 *
 * Format: 24-byte global header, then per frame a 16-byte record header and the
 * bytes, all in the writer's byte order (readers detect it from the magic).
 */
import { closeSync, createReadStream, openSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { LinkType } from './device.js';

const PCAP_MAGIC_MICROS = 0xa1b2c3d4;
const PCAP_VERSION_MAJOR = 2;
const PCAP_VERSION_MINOR = 4;
export const PCAP_SNAPLEN = 262144;
/** LINKTYPE_ETHERNET from the tcpdump.org link-layer header type registry. */
export const LINKTYPE_ETHERNET = 1;

const GLOBAL_HEADER_LEN = 24;
const RECORD_HEADER_LEN = 16;
const FAKE_ETH_LEN = 14;
/** Records gather in memory and reach the file in writes of about this size. */
const CHUNK = 65536;

export class PcapWriter {
  private readonly chunk = new Uint8Array(CHUNK);
  private readonly dv = new DataView(this.chunk.buffer);
  private used = 0;
  private fd: number | null;

  private constructor(fd: number) {
    this.fd = fd;
    const dv = this.dv;
    dv.setUint32(0, PCAP_MAGIC_MICROS, true);
    dv.setUint16(4, PCAP_VERSION_MAJOR, true);
    dv.setUint16(6, PCAP_VERSION_MINOR, true);
    dv.setInt32(8, 0, true); // thiszone: timestamps are UTC
    dv.setUint32(12, 0, true); // sigfigs
    dv.setUint32(16, PCAP_SNAPLEN, true);
    dv.setUint32(20, LINKTYPE_ETHERNET, true);
    this.used = GLOBAL_HEADER_LEN;
    this.flush();
  }

  /** Creates (or truncates) `path` and writes the file header to it. */
  static open(path: string): PcapWriter {
    return new PcapWriter(openSync(path, 'w'));
  }

  /**
   * Appends one frame. 'ip' frames (TUN) get a synthetic Ethernet header with zero
   * MACs so that one LINKTYPE_ETHERNET file holds every interface. `tsMicros` is
   * microseconds since the epoch; callers with a Stack clock should pass it.
   */
  write(frame: Uint8Array, linkType: LinkType, tsMicros: number = Date.now() * 1000): void {
    if (this.fd === null) throw new Error('pcap: write after close');
    const fake = linkType === 'ip' ? FAKE_ETH_LEN : 0;
    const origLen = fake + frame.length;
    const inclLen = Math.min(origLen, PCAP_SNAPLEN);
    const need = RECORD_HEADER_LEN + inclLen;
    if (this.used + need > CHUNK) this.flush();
    const big = need > CHUNK;
    // A record bigger than the chunk goes out on its own: header from the chunk, then the frame.
    const buf = this.chunk;
    let p = this.used;
    const sec = Math.floor(tsMicros / 1e6);
    const dv = this.dv;
    dv.setUint32(p, sec >>> 0, true);
    dv.setUint32(p + 4, Math.floor(tsMicros - sec * 1e6), true);
    dv.setUint32(p + 8, inclLen, true);
    dv.setUint32(p + 12, origLen, true);
    p += RECORD_HEADER_LEN;
    if (fake > 0) {
      buf.fill(0, p, p + 12);
      const v6 = frame.length > 0 && frame[0] >>> 4 === 6;
      buf[p + 12] = v6 ? 0x86 : 0x08;
      buf[p + 13] = v6 ? 0xdd : 0x00;
      p += FAKE_ETH_LEN;
    }
    const frameBytes = inclLen - fake;
    if (big) {
      this.used = p;
      this.flush();
      writeAll(this.fd, frame, 0, frameBytes);
      return;
    }
    buf.set(frame.length === frameBytes ? frame : frame.subarray(0, frameBytes), p);
    this.used = p + frameBytes;
  }

  /** Writes the buffered records to the file. */
  flush(): void {
    if (this.fd === null || this.used === 0) return;
    writeAll(this.fd, this.chunk, 0, this.used);
    this.used = 0;
  }

  close(): void {
    if (this.fd === null) return;
    this.flush();
    closeSync(this.fd);
    this.fd = null;
  }
}

function writeAll(fd: number, buf: Uint8Array, off: number, len: number): void {
  while (len > 0) {
    const n = writeSync(fd, buf, off, len);
    off += n;
    len -= n;
  }
}

export interface PcapPacket {
  /** Microseconds since the epoch. */
  ts: number;
  data: Uint8Array;
}

export interface PcapFile {
  linkType: number;
  packets: PcapPacket[];
}

// pcap-parser is CommonJS without type declarations: describe the part we use.
interface PcapParser {
  on(ev: 'globalHeader', fn: (h: { linkLayerType: number }) => void): PcapParser;
  on(
    ev: 'packet',
    fn: (p: { header: { timestampSeconds: number; timestampMicroseconds: number }; data: Uint8Array }) => void,
  ): PcapParser;
  on(ev: 'end', fn: () => void): PcapParser;
  on(ev: 'error', fn: (e: Error) => void): PcapParser;
}
const pcapParser = createRequire(import.meta.url)('pcap-parser') as {
  parse(input: string | NodeJS.ReadableStream): PcapParser;
};

/** Reads a whole classic pcap file (either byte order). */
export function readPcap(path: string): Promise<PcapFile> {
  return new Promise((resolve, reject) => {
    let linkType = -1;
    const packets: PcapPacket[] = [];
    let failed = false;
    pcapParser
      .parse(createReadStream(path))
      .on('globalHeader', (h) => {
        linkType = h.linkLayerType;
      })
      .on('packet', (p) => {
        packets.push({
          ts: p.header.timestampSeconds * 1e6 + p.header.timestampMicroseconds,
          data: new Uint8Array(p.data),
        });
      })
      .on('error', (e) => {
        failed = true;
        reject(e);
      })
      .on('end', () => {
        if (!failed) resolve({ linkType, packets });
      });
  });
}
