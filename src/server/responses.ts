import { SERVER_HEADER_VALUE, TEXT_PLAIN } from '../imds/protocol.js';

/**
 * Responses shaped like IMDS's own. Errors in the 4xx range carry IMDS's small XHTML page;
 * SDKs look only at the status, but humans with curl see what they would see on EC2.
 * Headers are plain objects: @hono/node-server writes those without building a Headers map.
 */

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Request Entity Too Large',
  503: 'Service Unavailable',
};

export function imdsText(body: string, status = 200, extra?: Record<string, string>): Response {
  return new Response(body, {
    status,
    headers: { 'content-type': TEXT_PLAIN, server: SERVER_HEADER_VALUE, ...extra },
  });
}

export function imdsError(status: number, extra?: Record<string, string>): Response {
  const title = `${status} - ${REASONS[status] ?? 'Error'}`;
  const body =
    '<?xml version="1.0" encoding="iso-8859-1"?>\n' +
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n' +
    '\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n' +
    '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n' +
    ` <head>\n  <title>${title}</title>\n </head>\n <body>\n  <h1>${title}</h1>\n </body>\n</html>\n`;
  return new Response(body, {
    status,
    headers: { 'content-type': 'text/html', server: SERVER_HEADER_VALUE, ...extra },
  });
}

/**
 * The proxy's own "not now": nothing valid to serve and upstream failing. Never 403/404/405,
 * which SDKs read as "IMDSv2 unavailable" and answer by downgrading for good.
 */
export function serviceUnavailable(reason: string, retryAfterSeconds: number): Response {
  return imdsText(`503 - Service Unavailable: ${reason}\n`, 503, { 'retry-after': String(retryAfterSeconds) });
}
