/**
 * Errors shaped like Node's: a system error carries the negative errno, its
 * code and the syscall (`send EMSGSIZE 10.0.0.2:7`); misuse of the API throws
 * Node's ERR_* codes.
 */

/** Linux errno values (asm-generic/errno.h), negated as libuv reports them. */
const ERRNO = {
  EPERM: 1,
  EIO: 5,
  ENODEV: 19,
  EPIPE: 32,
  EBADF: 9,
  EAGAIN: 11,
  EACCES: 13,
  EINVAL: 22,
  ENONET: 64,
  EPROTO: 71,
  EOPNOTSUPP: 95,
  EMSGSIZE: 90,
  ENOPROTOOPT: 92,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETUNREACH: 101,
  ENOBUFS: 105,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  ECONNABORTED: 103,
  ECONNRESET: 104,
  EISCONN: 106,
  ECONNREFUSED: 111,
  EHOSTDOWN: 112,
  EHOSTUNREACH: 113,
} as const;

export type Errno = keyof typeof ERRNO;

export interface SystemError extends Error {
  errno: number;
  code: string;
  syscall: string;
  address?: string;
  port?: number;
}

export function systemError(code: Errno, syscall: string, address?: string, port?: number): SystemError {
  const where = address !== undefined ? (port !== undefined ? ` ${address}:${port}` : ` ${address}`) : '';
  const e = new Error(`${syscall} ${code}${where}`) as SystemError;
  e.errno = -ERRNO[code];
  e.code = code;
  e.syscall = syscall;
  if (address !== undefined) e.address = address;
  if (port !== undefined) e.port = port;
  return e;
}

/** A failed name lookup, as Node's dns.lookup reports it. */
export function lookupError(hostname: string): SystemError {
  const e = new Error(`getaddrinfo ENOTFOUND ${hostname}`) as SystemError & { hostname: string };
  e.errno = -3008;
  e.code = 'ENOTFOUND';
  e.syscall = 'getaddrinfo';
  e.hostname = hostname;
  return e;
}

export interface CodedError extends Error {
  code: string;
}

/** Node's internal errors: the class (Error, TypeError, RangeError), a code and its message. */
export function nodeError(code: string, message: string, kind: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor = Error): CodedError {
  const e = new kind(message) as CodedError;
  e.code = code;
  return e;
}

/**
 * Linux's icmp_err_convert (net/ipv4/icmp.c): the errno for each Destination
 * Unreachable code; codes beyond the table are host unreachable.
 */
const UNREACH_ERRNO: readonly Errno[] = [
  'ENETUNREACH', // 0 net unreachable
  'EHOSTUNREACH', // 1 host unreachable
  'ENOPROTOOPT', // 2 protocol unreachable
  'ECONNREFUSED', // 3 port unreachable
  'EMSGSIZE', // 4 fragmentation needed and DF set
  'EOPNOTSUPP', // 5 source route failed
  'ENETUNREACH', // 6 destination network unknown
  'EHOSTDOWN', // 7 destination host unknown
  'ENONET', // 8 source host isolated
  'ENETUNREACH', // 9 network administratively prohibited
  'EHOSTUNREACH', // 10 host administratively prohibited
  'ENETUNREACH', // 11 network unreachable for TOS
  'EHOSTUNREACH', // 12 host unreachable for TOS
  'EHOSTUNREACH', // 13 communication administratively prohibited (RFC 1812)
  'EHOSTUNREACH', // 14 host precedence violation
  'EHOSTUNREACH', // 15 precedence cutoff in effect
];

/** The errno for an ICMP Destination Unreachable code. */
export function unreachErrno(code: number): Errno {
  return UNREACH_ERRNO[code] ?? 'EHOSTUNREACH';
}

/**
 * SO_MARK's value as a socket option takes it: an unsigned 32-bit integer
 * (Node's validateUint32), or undefined for none.
 */
export function checkMark(mark: unknown): number {
  if (mark === undefined) return 0;
  if (typeof mark !== 'number') throw nodeError('ERR_INVALID_ARG_TYPE', `The "mark" option must be of type number. Received ${typeof mark}`, TypeError);
  if (!Number.isInteger(mark) || mark < 0 || mark > 0xffffffff)
    throw nodeError('ERR_OUT_OF_RANGE', `The value of "mark" is out of range. It must be >= 0 && <= 4294967295. Received ${mark}`, RangeError);
  return mark;
}
