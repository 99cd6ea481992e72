import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/log.js';
import type { MetricsRecorder } from '../metrics/recorder.js';
import type { CredentialCache } from '../cache/credentialCache.js';
import type { MetadataCache } from '../cache/metadataCache.js';
import type { ClientTokenAuthority } from '../tokens/clientTokens.js';
import type { ExtendedCredentialsMode } from '../config/proxyConfig.js';
import type { ContainerAuthCheck } from '../tokens/containerAuthTokenFile.js';

/** Everything the routes need, built once by startProxy (or by a test). */
export interface ProxyServices {
  clock: Clock;
  logger: Logger;
  metrics: MetricsRecorder;
  tokens: ClientTokenAuthority;
  credentials: CredentialCache;
  metadata: MetadataCache;
  clientTokens: 'required' | 'optional';
  extendedCredentials: ExtendedCredentialsMode;
  /** Checks the Authorization value container clients send; undefined turns the route off. */
  containerAuth?: ContainerAuthCheck;
  /** Prometheus text exposition; undefined when metrics are off. */
  exposition?: () => Promise<{ contentType: string; body: string }>;
}
