import { Hono } from 'hono';
import type { ProxyServices } from './context.js';
import { clientTokenGuard } from './clientTokenGuard.js';
import { asResponse, imdsError, INTERNAL_ERROR } from './responses.js';
import { registerContainerCredentialRoutes } from './routes/containerCredentials.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerMetadataRoutes } from './routes/metadata.js';

/**
 * The routes off the SDKs' start-up path: forwarded metadata, health, metrics, container
 * credentials. Only the front door (frontDoor.ts) hands requests to this app, after its own
 * checks, with the path normalised; it also records every request.
 */
export function createProxyApp(services: ProxyServices): Hono {
  const { logger } = services;
  const app = new Hono();
  app.use('/latest/*', clientTokenGuard(services));

  registerHealthRoutes(app, services);
  registerContainerCredentialRoutes(app, services);
  registerMetadataRoutes(app, services);

  app.notFound(() => imdsError(404));
  app.onError((error) => {
    logInternalError(logger, error);
    return asResponse(INTERNAL_ERROR);
  });
  return app;
}

/** A bug, not client input: say so in the log, with the stack. */
export function logInternalError(logger: ProxyServices['logger'], error: unknown): void {
  const err = error instanceof Error ? { message: error.message, stack: error.stack } : { message: String(error) };
  logger.error({ event: 'internal_error', err }, 'request failed');
}
