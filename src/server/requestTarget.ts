/**
 * IMDS's path rules, applied once at the front door so every route sees the same path; the
 * rules, and why, in docs/architecture.md (the front door).
 */
export interface RequestTarget {
  /** Decoded, dot segments resolved, one leading slash: what routes match on. */
  readonly path: string;
  /** The same path still %-encoded, plus the query: what the hono app is handed. */
  readonly url: string;
}

export function parseRequestTarget(raw: string): RequestTarget | undefined {
  if (raw.charCodeAt(0) !== 0x2f /* / */) return undefined;
  const queryAt = raw.indexOf('?');
  let path = queryAt === -1 ? raw : raw.slice(0, queryAt);
  const query = queryAt === -1 ? '' : raw.slice(queryAt);
  if (path.includes('\\')) return undefined;
  path = collapseLeadingSlashes(path);
  if (!path.includes('%') && !path.includes('/.')) return { path, url: path === raw ? raw : path + query };
  // The WHATWG parser resolves `.`/`..` (also as %2e) the way every HTTP client does.
  const encoded = collapseLeadingSlashes(new URL(path, 'http://localhost').pathname);
  return { path: decodePath(encoded), url: encoded + query };
}

function collapseLeadingSlashes(path: string): string {
  let i = 0;
  while (path.charCodeAt(i + 1) === 0x2f) i++;
  return i === 0 ? path : path.slice(i);
}

/** decodeURI keeps reserved characters (`%2F` among them) encoded; a malformed escape stays as sent. */
function decodePath(path: string): string {
  try {
    return decodeURI(path);
  } catch {
    return path;
  }
}
