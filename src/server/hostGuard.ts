import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';

export type HostVerdict = 'pass' | 'rebinding' | 'malformed';

/**
 * The DNS-rebinding guard: refuses what only browsers send (a Host naming a DNS name other than
 * localhost and --allow-host; Origin; Sec-Fetch-Site). Why, and what passes: README, Security notes.
 */
export function createHostGuard(allowHosts: readonly string[]): (headers: IncomingHttpHeaders) => HostVerdict {
  const allowed = new Set(['localhost', ...allowHosts.map((h) => h.toLowerCase())]);
  // Every client on a host sends the same Host (`127.0.0.1:8169`): judged once, not per request.
  let lastPassed: string | undefined;
  return (headers) => {
    if (headers.origin !== undefined || headers['sec-fetch-site'] !== undefined) return 'rebinding';
    const host = headers.host;
    if (host === undefined || host === '' || host === lastPassed) return 'pass';
    const verdict = judgeHost(host, allowed);
    if (verdict === 'pass') lastPassed = host;
    return verdict;
  };
}

function judgeHost(host: string, allowed: ReadonlySet<string>): HostVerdict {
  if (host.charCodeAt(0) === 0x5b /* [ */) {
    const end = host.indexOf(']');
    if (end === -1 || isIP(host.slice(1, end)) !== 6) return 'malformed';
    const rest = host.slice(end + 1);
    if (rest === '') return 'pass';
    return rest.charCodeAt(0) === 0x3a /* : */ && validPort(rest.slice(1)) ? 'pass' : 'malformed';
  }
  const colon = host.indexOf(':');
  let name = host;
  if (colon !== -1) {
    // More than one colon: an IPv6 literal without its brackets, or nothing valid.
    if (host.indexOf(':', colon + 1) !== -1) return isIP(host) === 6 ? 'pass' : 'malformed';
    if (!validPort(host.slice(colon + 1))) return 'malformed';
    name = host.slice(0, colon);
  }
  if (isIP(name) === 4) return 'pass';
  return allowed.has(name.toLowerCase()) ? 'pass' : 'rebinding';
}

function validPort(port: string): boolean {
  return /^[0-9]{1,5}$/.test(port);
}
