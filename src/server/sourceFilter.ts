import { BlockList, isIP } from 'node:net';

/**
 * `--allow-cidr`: which client addresses may talk to the proxy at all. Checked on the raw
 * socket, before any route runs. An empty list allows everyone (the proxy then relies on
 * listening on loopback).
 */
export function createSourceFilter(cidrs: readonly string[]): ((address: string | undefined) => boolean) | undefined {
  if (cidrs.length === 0) return undefined;
  const allowed = new BlockList();
  for (const cidr of cidrs) {
    const [network = '', prefix = ''] = cidr.split('/');
    allowed.addSubnet(network, Number(prefix), isIP(network) === 6 ? 'ipv6' : 'ipv4');
  }
  return (address) => {
    if (address === undefined) return false;
    // IPv4 clients of a dual-stack socket appear as ::ffff:a.b.c.d.
    const v4 = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : undefined;
    if (v4 !== undefined) return allowed.check(v4, 'ipv4');
    return allowed.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
  };
}

/** Loopback listen addresses need no allow-list; anything else should have one. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
