import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { routeTarget, targetRouter } from '../../src/server/targetRoutes.js';

const CREDS = '/latest/meta-data/iam/security-credentials';
const EXTENDED = '/latest/meta-data/iam/security-credentials-extended';

describe('targetRouter', () => {
  it('routes the IMDS core routes, in every spelling the path rules allow', () => {
    const router = targetRouter();
    const core = (raw: string) => {
      const { core: c, role, route } = router(raw);
      return [c, role, route];
    };
    expect(core('/latest/api/token')).toEqual(['token', '', 'token']);
    expect(core('//latest/api/token')).toEqual(['token', '', 'token']);
    expect(core(`${CREDS}/`)).toEqual(['role_list', '', 'credentials_list']);
    expect(core(CREDS)).toEqual(['role_list', '', 'credentials_list']);
    expect(core(`${CREDS}/app-role`)).toEqual(['role_credentials', 'app-role', 'credentials']);
    expect(core(`${CREDS}/app-role/`)).toEqual(['role_credentials', 'app-role', 'credentials']);
    expect(core(`${CREDS}/app%2Drole`)).toEqual(['role_credentials', 'app-role', 'credentials']);
    expect(core(`${CREDS}/a/b`)).toEqual([undefined, '', 'credentials']);
    expect(core(`${EXTENDED}/`)).toEqual(['extended_role_list', '', 'credentials_extended']);
    expect(core(`${EXTENDED}/app-role`)).toEqual(['extended_role_credentials', 'app-role', 'credentials_extended']);
    expect(core('/latest/meta-data/instance-id')).toEqual([undefined, '', 'metadata']);
    expect(router('no-slash').target).toBeUndefined();
  });

  it('answers exactly as parsing afresh would, for any targets, past the memo\'s bound', () => {
    const router = targetRouter();
    const target = fc.oneof(
      fc.constantFrom('/latest/api/token', `${CREDS}/`, `${CREDS}/r`, `${EXTENDED}/r`, '/latest/meta-data/', '//latest//x', '/%2e%2e/latest/api/token', '\\x'),
      fc.string({ maxLength: 40 }).map((s) => `${CREDS}/${s}`),
      fc.string({ maxLength: 40 }),
    );
    fc.assert(
      fc.property(fc.array(target, { minLength: 1, maxLength: 200 }), (raws) => {
        for (const raw of raws) expect(router(raw)).toEqual(routeTarget(raw));
      }),
      { numRuns: 200 },
    );
  });
});
