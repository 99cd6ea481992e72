import { SERVER_HEADER_VALUE, TEXT_PLAIN } from '../imds/protocol.js';

/**
 * Answers shaped like IMDS's own. Errors in the 4xx range carry IMDS's small XHTML page;
 * SDKs look only at the status, but humans with curl see what they would see on EC2.
 *
 * An `Answer` is plain data: the front door writes it on node:http's response object, and
 * hono routes turn it into a Response with `asResponse`, so both say the same bytes.
 */
export interface Answer {
  readonly status: number;
  /** Always with Content-Length: node then sends headers and body in one write(). */
  readonly headers: Readonly<Record<string, string | number>>;
  readonly body: string;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Request Entity Too Large',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Error';
}

export function textAnswer(body: string, status = 200, extra?: Record<string, string>): Answer {
  return {
    status,
    headers: { 'content-type': TEXT_PLAIN, server: SERVER_HEADER_VALUE, ...extra, 'content-length': Buffer.byteLength(body) },
    body,
  };
}

const pages = new Map<number, string>();

/** IMDS's error page for `status`, built once per status. */
export function errorPage(status: number): string {
  let page = pages.get(status);
  if (page === undefined) {
    const title = `${status} - ${reasonPhrase(status)}`;
    page =
      '<?xml version="1.0" encoding="iso-8859-1"?>\n' +
      '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n' +
      '\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n' +
      '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n' +
      ` <head>\n  <title>${title}</title>\n </head>\n <body>\n  <h1>${title}</h1>\n </body>\n</html>\n`;
    pages.set(status, page);
  }
  return page;
}

export function errorAnswer(status: number, extra?: Record<string, string>): Answer {
  const body = errorPage(status);
  return {
    status,
    headers: { 'content-type': 'text/html', server: SERVER_HEADER_VALUE, ...extra, 'content-length': Buffer.byteLength(body) },
    body,
  };
}

/** What every /latest/ route but the token's answers to a method other than GET and HEAD. */
export const METADATA_METHOD_NOT_ALLOWED = errorAnswer(405, { allow: 'GET, HEAD' });

/** A bug, not client input: the page says so, and keeps secrets and stacks off the wire. */
export const INTERNAL_ERROR = textAnswer('500 - Internal Server Error\n', 500);

/**
 * The proxy's own "not now": nothing valid to serve and upstream failing. Never 403/404/405,
 * which SDKs read as "IMDSv2 unavailable" and answer by downgrading for good.
 */
export function unavailableAnswer(reason: string, retryAfterSeconds: number): Answer {
  return textAnswer(`503 - Service Unavailable: ${reason}\n`, 503, { 'retry-after': String(retryAfterSeconds) });
}

/** The same answer as a fetch Response, for the hono routes. */
export function asResponse({ status, headers, body }: Answer): Response {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) out[name] = String(value);
  return new Response(body, { status, headers: out });
}

export function imdsText(body: string, status = 200, extra?: Record<string, string>): Response {
  return asResponse(textAnswer(body, status, extra));
}

export function imdsError(status: number, extra?: Record<string, string>): Response {
  return asResponse(errorAnswer(status, extra));
}

export function serviceUnavailable(reason: string, retryAfterSeconds: number): Response {
  return asResponse(unavailableAnswer(reason, retryAfterSeconds));
}
