import type { CredentialSource } from '../../src/cache/credentialCache.js';
import type { RoleCredentials } from '../../src/imds/credentials.js';
import { UpstreamError } from '../../src/upstream/errors.js';

/**
 * A scriptable credential source: counts calls, answers what the test says, and can hold
 * answers until released, to make requests pile up on a fetch in flight.
 */
export class FakeSource implements CredentialSource {
  roles = ['app-role'];
  credentials: RoleCredentials;
  failure: UpstreamError | undefined;
  listCalls = 0;
  fetchCalls = 0;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  constructor(credentials: RoleCredentials) {
    this.credentials = credentials;
  }

  hold(): void {
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }

  release(): void {
    this.openGate?.();
    this.gate = undefined;
  }

  failWith(kind: UpstreamError['kind'] | undefined, status?: number): void {
    this.failure = kind === undefined ? undefined : new UpstreamError(kind, `scripted ${kind}`, status);
  }

  async listRoles(): Promise<string[]> {
    this.listCalls++;
    await this.gate;
    if (this.failure) throw this.failure;
    return [...this.roles];
  }

  async fetchCredentials(role: string): Promise<RoleCredentials> {
    this.fetchCalls++;
    await this.gate;
    if (this.failure) throw this.failure;
    if (!this.roles.includes(role)) throw new UpstreamError('http_error', 'no such role', 404);
    return this.credentials;
  }
}
