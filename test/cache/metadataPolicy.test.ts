import { describe, expect, it } from 'vitest';
import { DEFAULT_METADATA_TTLS as T, metadataTtlMs } from '../../src/cache/metadataPolicy.js';

describe('metadata cache lifetimes (item 4)', () => {
  it('iam/info lives a minute, not instance-static hours: the instance profile can be replaced', () => {
    for (const path of ['/latest/meta-data/iam/info', '/latest/meta-data/iam/info/']) {
      const ttl = metadataTtlMs(path, 200, T);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(60_000);
    }
  });

  it('never keeps anything credential-bearing, however the path is spelled', () => {
    for (const path of [
      '/latest/meta-data/iam/security-credentials//app-role',
      '/latest/meta-data/iam/security-credentials/app-role/extra',
      '/latest/meta-data//iam/security-credentials/app-role',
      '/latest/meta-data/iam/security-credentials-extended/app-role',
      '/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance',
      '/latest/meta-data/identity-credentials/ec2/info',
      '/latest/meta-data/identity-credentials/',
    ]) {
      expect(metadataTtlMs(path, 200, T), path).toBe(0);
    }
  });

  it('instance-static data is still kept long, and a 404 briefly', () => {
    expect(metadataTtlMs('/latest/meta-data/instance-id', 200, T)).toBe(T.staticMs);
    expect(metadataTtlMs('/latest/meta-data/identity-credentials/ec2/info', 404, T)).toBe(T.notFoundMs);
  });
});
