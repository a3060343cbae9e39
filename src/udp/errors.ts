/**
 * Errors shaped like Node's: a system error carries the negative errno, its
 * code and the syscall (`send EMSGSIZE 10.0.0.2:7`); misuse of the API throws
 * Node's ERR_* codes.
 */

/** Linux errno values (asm-generic/errno.h), negated as libuv reports them. */
const ERRNO = {
  EPERM: 1,
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
