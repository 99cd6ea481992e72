import { describe, expect, it } from 'vitest';
import { takeInheritedListeners } from '../../src/server/inheritedListeners.js';
import { UsageError } from '../../src/config/usageError.js';

/** sd_listen_fds(3)'s conventions, as `serve` reads them. */

const PID = 4242;

function take(env: NodeJS.ProcessEnv) {
  const copy = { ...env, OTHER: 'kept' };
  const result = takeInheritedListeners(copy, PID);
  return { result, env: copy };
}

describe('takeInheritedListeners', () => {
  it('nothing passed: nothing inherited, and serve binds --listen as before', () => {
    expect(take({}).result).toEqual({});
  });

  it('one socket, whatever its name (systemd defaults to the unit\'s), is the IMDS socket', () => {
    expect(take({ LISTEN_FDS: '1', LISTEN_PID: String(PID) }).result).toEqual({ imds: { fd: 3, name: 'imds' } });
    expect(take({ LISTEN_FDS: '1', LISTEN_PID: String(PID), LISTEN_FDNAMES: 'imds-cache-proxy.socket' }).result).toEqual({
      imds: { fd: 3, name: 'imds-cache-proxy.socket' },
    });
    expect(take({ LISTEN_FDS: '1', LISTEN_PID: String(PID), LISTEN_FDNAMES: 'metrics' }).result).toEqual({
      metrics: { fd: 3, name: 'metrics' },
    });
  });

  it('named sockets are found by name, in LISTEN_FDNAMES order from fd 3', () => {
    expect(take({ LISTEN_FDS: '2', LISTEN_PID: String(PID), LISTEN_FDNAMES: 'metrics:imds' }).result).toEqual({
      metrics: { fd: 3, name: 'metrics' },
      imds: { fd: 4, name: 'imds' },
    });
  });

  it('variables meant for another process are ignored (the parent\'s, passed down by mistake)', () => {
    expect(take({ LISTEN_FDS: '1', LISTEN_PID: String(PID + 1) }).result).toEqual({});
    expect(take({ LISTEN_FDS: '1' }).result).toEqual({});
    expect(take({ LISTEN_FDS: '0', LISTEN_PID: String(PID) }).result).toEqual({});
  });

  it('removes LISTEN_* from the environment in every case, and nothing else', () => {
    for (const env of [
      { LISTEN_FDS: '1', LISTEN_PID: String(PID), LISTEN_FDNAMES: 'imds' },
      { LISTEN_FDS: '1', LISTEN_PID: String(PID + 1), LISTEN_FDNAMES: 'imds' },
    ]) {
      const after = take(env).env;
      expect(after).toEqual({ OTHER: 'kept' });
    }
    const bad = { LISTEN_FDS: 'x', LISTEN_PID: String(PID), OTHER: 'kept' };
    expect(() => takeInheritedListeners(bad, PID)).toThrow(UsageError);
    expect(bad).toEqual({ OTHER: 'kept' });
  });

  it.each([
    [{ LISTEN_FDS: 'two', LISTEN_PID: String(PID) }, /LISTEN_FDS: expected a number of sockets, got "two"/],
    [{ LISTEN_FDS: '1', LISTEN_PID: 'me' }, /LISTEN_PID: expected a process id, got "me"/],
    [{ LISTEN_FDS: '2', LISTEN_PID: String(PID), LISTEN_FDNAMES: 'imds' }, /LISTEN_FDNAMES: 1 names \("imds"\) for LISTEN_FDS=2/],
    [{ LISTEN_FDS: '2', LISTEN_PID: String(PID) }, /socket 3 is named ""; with more than one socket, name them "imds" and "metrics"/],
    [{ LISTEN_FDS: '2', LISTEN_PID: String(PID), LISTEN_FDNAMES: 'imds:web' }, /socket 4 is named "web"/],
    [{ LISTEN_FDS: '2', LISTEN_PID: String(PID), LISTEN_FDNAMES: 'imds:imds' }, /more than one socket named "imds"/],
  ])('refuses what it cannot make sense of, in one line naming the variable: %j', (env, message) => {
    let error: unknown;
    try {
      take(env);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain('\n');
  });
});
