import type { Hono } from 'hono';
import { SERVER_HEADER_VALUE, TEXT_PLAIN } from '../../imds/protocol.js';
import { UpstreamError } from '../../upstream/errors.js';
import type { ProxyServices } from '../context.js';
import { routeLabelOf } from '../routeLabel.js';
import { asResponse, imdsError, METADATA_METHOD_NOT_ALLOWED, serviceUnavailable } from '../responses.js';

/** Longer paths are no IMDS path; they are answered 404 without bothering upstream. */
const MAX_PATH_LENGTH = 1024;

/**
 * Every other GET under /latest/ goes to IMDS (through the metadata cache) and its answer
 * is relayed as it came: status, body, content type. Only the path is forwarded: never the
 * query, never the client's headers, and always to the configured upstream.
 */
export function registerMetadataRoutes(app: Hono, { metadata, logger }: ProxyServices): void {
  app.get('/latest/*', async (c) => {
    const path = c.req.path;
    if (path.length > MAX_PATH_LENGTH) return imdsError(404);
    try {
      const answer = await metadata.get(path, routeLabelOf(path));
      return new Response(answer.body, {
        status: answer.status,
        headers: {
          'content-type': answer.contentType ?? TEXT_PLAIN,
          server: SERVER_HEADER_VALUE,
          ...(answer.location !== undefined ? { location: answer.location } : {}),
        },
      });
    } catch (error) {
      if (!(error instanceof UpstreamError)) throw error;
      logger.warn({ event: 'metadata_forward_failed', route: routeLabelOf(path), failure: error.kind, reason: error.message }, 'forwarding to upstream failed');
      return serviceUnavailable(`upstream IMDS failed (${error.kind})`, 1);
    }
  });
  app.all('/latest/*', () => asResponse(METADATA_METHOD_NOT_ALLOWED));
}
