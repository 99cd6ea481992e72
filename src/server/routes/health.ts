import type { Hono } from 'hono';
import type { ProxyServices } from '../context.js';
import { imdsError, imdsText } from '../responses.js';

/**
 * Liveness and readiness, without a token, for systemd, Docker and Kubernetes probes.
 * Ready means credentials are cached and servable: a proxy that would answer 503 to every
 * SDK should not be put in front of them.
 */
export function registerHealthRoutes(app: Hono, { credentials, exposition }: ProxyServices): void {
  app.get('/healthz', () => imdsText('ok\n'));
  app.get('/readyz', () =>
    credentials.isReady() ? imdsText('ready\n') : imdsText('not ready: no valid credentials cached yet\n', 503),
  );
  app.get('/metrics', async () => {
    if (exposition === undefined) return imdsError(404);
    const { contentType, body } = await exposition();
    return new Response(body, { status: 200, headers: { 'content-type': contentType } });
  });
}
