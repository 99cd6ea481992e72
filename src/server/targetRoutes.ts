import { CREDENTIALS_PREFIX, EXTENDED_CREDENTIALS_PREFIX, TOKEN_PATH } from '../imds/protocol.js';
import type { RouteLabel } from '../metrics/recorder.js';
import { parseRequestTarget, type RequestTarget } from './requestTarget.js';
import { routeLabelOf } from './routeLabel.js';

/** The IMDS routes the front door answers itself (the rest go to the hono app). */
export type CoreRoute = 'token' | 'role_list' | 'role_credentials' | 'extended_role_list' | 'extended_role_credentials';

/** What the front door needs to know about a request target, worked out from its text alone. */
export interface RoutedTarget {
  /** Undefined for a target IMDS's path rules refuse (400). */
  readonly target: RequestTarget | undefined;
  readonly route: RouteLabel;
  readonly core: CoreRoute | undefined;
  /** The role named, for the two role_credentials routes; '' otherwise. */
  readonly role: string;
}

/** Distinct targets remembered; past this the memo starts again (targets are the client's to choose). */
const REMEMBERED_TARGETS = 64;

/**
 * The request target's route, parsed once per distinct target: every SDK process on a host
 * asks for the same three or four URLs, so after the first of each a request costs one Map
 * lookup here instead of the path rules, the route label and the role's slice.
 */
export function targetRouter(): (raw: string) => RoutedTarget {
  const memo = new Map<string, RoutedTarget>();
  return (raw) => {
    let routed = memo.get(raw);
    if (routed === undefined) {
      routed = routeTarget(raw);
      if (memo.size >= REMEMBERED_TARGETS) memo.clear();
      memo.set(raw, routed);
    }
    return routed;
  };
}

export function routeTarget(raw: string): RoutedTarget {
  const target = parseRequestTarget(raw);
  if (target === undefined) return { target, route: 'other', core: undefined, role: '' };
  const { path } = target;
  const route = routeLabelOf(path);
  if (path === TOKEN_PATH) return { target, route, core: 'token', role: '' };
  let role = roleUnder(CREDENTIALS_PREFIX, path);
  if (role !== undefined) return { target, route, core: role === '' ? 'role_list' : 'role_credentials', role };
  role = roleUnder(EXTENDED_CREDENTIALS_PREFIX, path);
  if (role !== undefined) return { target, route, core: role === '' ? 'extended_role_list' : 'extended_role_credentials', role };
  return { target, route, core: undefined, role: '' };
}

/**
 * For a path under `prefix`: '' for the listing (with or without its slash), the role for
 * `<role>` or `<role>/`, undefined for anything else (more segments, another route).
 */
function roleUnder(prefix: string, path: string): string | undefined {
  if (!path.startsWith(prefix)) return undefined;
  const start = prefix.length;
  if (path.length === start || path.length === start + 1) return path.length === start || path.charCodeAt(start) === 0x2f ? '' : undefined;
  if (path.charCodeAt(start) !== 0x2f /* / */) return undefined;
  const end = path.charCodeAt(path.length - 1) === 0x2f ? path.length - 1 : path.length;
  const role = path.slice(start + 1, end);
  return role === '' || role.includes('/') ? undefined : role;
}
