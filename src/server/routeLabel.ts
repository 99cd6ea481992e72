import type { RouteLabel } from '../metrics/recorder.js';
import { CREDENTIALS_PREFIX, EXTENDED_CREDENTIALS_PREFIX, IAM_INFO_PATH, TOKEN_PATH } from '../imds/protocol.js';

/**
 * The metrics label for a request path: a fixed, small set whatever a client sends, so the
 * label cardinality of every series stays bounded.
 */
export function routeLabelOf(path: string): RouteLabel {
  if (path.startsWith('/latest/')) {
    if (path === TOKEN_PATH) return 'token';
    if (path.startsWith(CREDENTIALS_PREFIX)) {
      const rest = path.slice(CREDENTIALS_PREFIX.length);
      if (rest === '' || rest === '/') return 'credentials_list';
      if (rest.startsWith('/')) return 'credentials';
    }
    if (path.startsWith(EXTENDED_CREDENTIALS_PREFIX)) {
      const rest = path.slice(EXTENDED_CREDENTIALS_PREFIX.length);
      if (rest === '' || rest.startsWith('/')) return 'credentials_extended';
    }
    if (path === IAM_INFO_PATH || path === `${IAM_INFO_PATH}/`) return 'iam_info';
    if (path.startsWith('/latest/meta-data')) return 'metadata';
    if (path.startsWith('/latest/dynamic')) return 'dynamic';
    if (path.startsWith('/latest/user-data')) return 'user_data';
    return 'other';
  }
  if (path === '/healthz' || path === '/readyz') return 'health';
  if (path === '/metrics') return 'metrics';
  if (path === '/container-credentials') return 'container_credentials';
  return 'other';
}
