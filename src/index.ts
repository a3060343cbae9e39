/**
 * tapstack as a library: a Stack (one host), the devices it runs on, config
 * lines in the daemon's syntax, and sockets shaped like Node's net and dgram,
 * so Node's http, https and tls run over it unchanged.
 *
 *   const stack = new Stack();
 *   openTap(stack, 'tap0');
 *   configure(stack, ['addr add 10.0.0.2/24 dev tap0', 'route add default via 10.0.0.1']);
 *   const web = http.createServer(handler);
 *   stack.tcp.createServer((socket) => web.emit('connection', socket)).listen(80);
 */
export { Stack, StackError, type StackOptions } from './stack.js';
export { Time, RealTime, VirtualTime, Timer } from './time/timers.js';
export type { Logger } from './log.js';

export { openTap, openTun, configure, ConfigureError, type OpenDeviceOptions, type ConfigureOptions } from './library.js';
export type { DeviceFactory } from './control/exec.js';
export { CommandError } from './control/words.js';

export { Interface, type InterfaceOptions, type InterfaceAddr, type LinkDropReason } from './link/interface.js';
export type { Device, DeviceReceiver, LinkType } from './link/device.js';
export { TapDevice, openTap as openTapDevice, openTun as openTunDevice, type TunDevice, type TapOptions } from './link/tap.js';
export { SimDevice, simLink, type SimImpairments, type SimLinkStats } from './link/sim.js';
export { PcapWriter } from './link/pcap.js';

export type { Tcp } from './tcp/tcp.js';
export { TcpSocket, type TcpSocketOptions, type TcpConnectOptions, type AddressInfo } from './tcp/socket.js';
export { TcpServer, type TcpServerOptions, type ListenOptions } from './tcp/server.js';
export type { Udp } from './udp/udp.js';
export { UdpSocket, type UdpSocketOptions, type RemoteInfo, type BindOptions, type Message, type SendCallback } from './udp/socket.js';

export type { Errno, SystemError, CodedError } from './errors.js';
export { RouteError } from './ip/route.js';
export { ServiceError } from './services/service.js';
export { SysctlError } from './sysctl.js';

export { Ruleset, RulesetError } from './netfilter/ruleset.js';
export type * from './netfilter/ast.js';
export { PRIORITY } from './netfilter/ast.js';

export { parseIp4, formatIp4 } from './wire/addr.js';
