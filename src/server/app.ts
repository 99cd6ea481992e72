import { Hono } from 'hono';
import type { ProxyServices } from './context.js';
import { clientTokenGuard } from './clientTokenGuard.js';
import { imdsError } from './responses.js';
import { routeLabelOf } from './routeLabel.js';
import { registerContainerCredentialRoutes } from './routes/containerCredentials.js';
import { registerCredentialRoutes } from './routes/credentials.js';
import { registerExtendedCredentialRoutes } from './routes/extendedCredentials.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerMetadataRoutes } from './routes/metadata.js';
import { registerTokenRoutes } from './routes/token.js';

/** The proxy's HTTP surface: IMDS's routes, health and metrics. */
export function createProxyApp(services: ProxyServices): Hono {
  const { metrics, logger } = services;
  const app = new Hono();

  const logRequests = logger.isLevelEnabled('debug');
  app.use('*', async (c, next) => {
    const started = performance.now();
    await next();
    const route = routeLabelOf(c.req.path);
    const ms = performance.now() - started;
    metrics.request(route, c.req.method, c.res.status, ms / 1000);
    // Route label and status only: paths and headers are the client's, tokens among them.
    if (logRequests) logger.debug({ event: 'request', method: c.req.method, route, status: c.res.status, ms: Math.round(ms * 100) / 100 }, 'request');
  });
  app.use('/latest/*', clientTokenGuard(services));

  registerHealthRoutes(app, services);
  registerTokenRoutes(app, services);
  registerCredentialRoutes(app, services);
  registerExtendedCredentialRoutes(app, services);
  registerContainerCredentialRoutes(app, services);
  registerMetadataRoutes(app, services);

  app.notFound(() => imdsError(404));
  app.onError((error) => {
    // A bug, not client input: say so in the log, keep secrets and stacks off the wire.
    logger.error({ event: 'internal_error', err: { message: error.message, stack: error.stack } }, 'request failed');
    return new Response('500 - Internal Server Error\n', { status: 500, headers: { 'content-type': 'text/plain', server: 'EC2ws' } });
  });
  return app;
}
