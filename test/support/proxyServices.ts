import { ManualClock } from '../../src/runtime/clock.js';
import { CredentialCache } from '../../src/cache/credentialCache.js';
import { MetadataCache } from '../../src/cache/metadataCache.js';
import { DEFAULT_METADATA_TTLS } from '../../src/cache/metadataPolicy.js';
import { DEFAULT_REFRESH_SETTINGS } from '../../src/cache/refreshPolicy.js';
import { silentLogger } from '../../src/runtime/log.js';
import { createFrontDoor, type FrontDoorOptions } from '../../src/server/frontDoor.js';
import type { ProxyServices } from '../../src/server/context.js';
import { ClientTokenAuthority } from '../../src/tokens/clientTokens.js';
import type { UpstreamResponse } from '../../src/upstream/httpRequest.js';
import { makeCredentials } from './credentials.js';
import { FakeSource } from './fakeSource.js';
import { RecordingMetrics } from './recordingMetrics.js';

/**
 * The proxy's front door over fakes: no sockets, an injected clock, every call countable.
 * `app.request` goes through the front door's own decisions and routes, as on a socket.
 */
export function proxyAppWithFakes(
  options: {
    clientTokens?: 'required' | 'optional';
    extendedCredentials?: ProxyServices['extendedCredentials'];
    containerAuthToken?: string;
    frontDoor?: FrontDoorOptions;
  } = {},
) {
  const clock = new ManualClock();
  const metrics = new RecordingMetrics();
  const source = new FakeSource(makeCredentials(clock.now() + 6 * 3600_000));
  const forwarded: string[] = [];
  let metadataAnswer: (path: string) => UpstreamResponse = (path) => ({
    status: 200,
    body: `value of ${path}`,
    contentType: 'text/plain',
    tokenTtl: undefined,
  });
  const services: ProxyServices = {
    clock,
    logger: silentLogger,
    metrics,
    tokens: new ClientTokenAuthority(clock),
    credentials: new CredentialCache({ source, clock, settings: DEFAULT_REFRESH_SETTINGS, metrics, logger: silentLogger }),
    metadata: new MetadataCache({
      fetch: async (path) => {
        forwarded.push(path);
        return metadataAnswer(path);
      },
      clock,
      metrics,
      ttls: DEFAULT_METADATA_TTLS,
      maxEntries: 100,
      maxBytes: 1 << 20,
    }),
    clientTokens: options.clientTokens ?? 'required',
    extendedCredentials: options.extendedCredentials ?? 'synthesize',
    // The file-backed check has its own tests (test/tokens/containerAuthTokenFile.test.ts).
    ...(options.containerAuthToken !== undefined ? { containerAuth: { accepts: async (given: string) => given === options.containerAuthToken } } : {}),
  };
  const frontDoor = createFrontDoor(services, options.frontDoor);
  const app = { request: frontDoor.request };
  const token = services.tokens.mint(21600);
  return {
    app,
    frontDoor,
    clock,
    metrics,
    source,
    services,
    forwarded,
    token,
    setMetadataAnswer(fn: (path: string) => UpstreamResponse) {
      metadataAnswer = fn;
    },
    get(path: string, headers: Record<string, string> = { 'x-aws-ec2-metadata-token': token }) {
      return app.request(path, { headers });
    },
  };
}
