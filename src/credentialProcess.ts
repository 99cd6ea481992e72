import { parseArgs } from 'node:util';
import { DEFAULT_LISTEN, firstLine } from './config.js';
import { CREDENTIALS_PREFIX, TOKEN_HEADER, TOKEN_PATH, TOKEN_TTL_HEADER, formatImdsTime } from './imds/protocol.js';
import { parseCredentialsDocument } from './imds/credentials.js';
import { UsageError } from './usageError.js';

export const CREDENTIAL_PROCESS_HELP = `Usage: imds-cache-proxy credential-process [--endpoint URL] [--timeout-ms MS]

Print the instance role's credentials from a running proxy in the credential_process
format, for ~/.aws/config:

  [profile instance]
  credential_process = imds-cache-proxy credential-process --endpoint http://127.0.0.1:8169

  --endpoint URL     the proxy (default http://${DEFAULT_LISTEN})
  --timeout-ms MS    per request (default 2000)
`;

/**
 * `imds-cache-proxy credential-process`: the IMDSv2 dance against the proxy, printed as the
 * `credential_process` JSON (Version 1). Failures print one line on stderr and exit 1, so
 * the SDK reports them instead of using half an answer.
 */
export async function runCredentialProcessCommand(argv: string[]): Promise<number> {
  let values: { endpoint?: string; 'timeout-ms'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { endpoint: { type: 'string' }, 'timeout-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (error) {
    throw new UsageError(firstLine(error));
  }
  if (values.help) {
    process.stdout.write(CREDENTIAL_PROCESS_HELP);
    return 0;
  }
  const endpoint = (values.endpoint ?? `http://${DEFAULT_LISTEN}`).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+$/.test(endpoint)) throw new UsageError(`--endpoint: expected http://HOST:PORT, got "${values.endpoint}"`);
  const rawTimeout = values['timeout-ms'] ?? '2000';
  if (!/^\d+$/.test(rawTimeout) || Number(rawTimeout) < 1) throw new UsageError(`--timeout-ms: expected a whole number of milliseconds, got "${rawTimeout}"`);
  const timeoutMs = Number(rawTimeout);

  try {
    const token = await call(`${endpoint}${TOKEN_PATH}`, 'PUT', { [TOKEN_TTL_HEADER]: '300' }, timeoutMs);
    const roles = await call(`${endpoint}${CREDENTIALS_PREFIX}/`, 'GET', { [TOKEN_HEADER]: token }, timeoutMs);
    const role = roles.split('\n')[0]?.trim();
    if (!role) throw new Error('the instance profile lists no role');
    const body = await call(`${endpoint}${CREDENTIALS_PREFIX}/${encodeURIComponent(role)}`, 'GET', { [TOKEN_HEADER]: token }, timeoutMs);
    const parsed = parseCredentialsDocument(body);
    if (parsed.kind !== 'credentials') {
      throw new Error(parsed.kind === 'error-document' ? `error document (Code ${parsed.code})` : `invalid credentials document: ${parsed.reason}`);
    }
    const c = parsed.credentials;
    process.stdout.write(
      `${JSON.stringify({
        Version: 1,
        AccessKeyId: c.accessKeyId,
        SecretAccessKey: c.secretAccessKey,
        SessionToken: c.token,
        Expiration: formatImdsTime(c.expiration),
        ...(c.accountId !== undefined ? { AccountId: c.accountId } : {}),
      })}\n`,
    );
    return 0;
  } catch (error) {
    process.stderr.write(`imds-cache-proxy credential-process: ${firstLine(error)} (endpoint ${endpoint})\n`);
    return 1;
  }
}

async function call(url: string, method: 'GET' | 'PUT', headers: Record<string, string>, timeoutMs: number): Promise<string> {
  let response: Response;
  try {
    response = await fetch(url, { method, headers, signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    throw new Error(`${method} ${new URL(url).pathname} failed: ${cause ?? (error as Error).name}`);
  }
  const body = await response.text();
  if (response.status !== 200) throw new Error(`${method} ${new URL(url).pathname} answered ${response.status}`);
  return body;
}
