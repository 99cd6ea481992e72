import { Agent } from 'node:http';
import { DEFAULT_LISTEN } from '../config/proxyConfig.js';
import { CREDENTIALS_PREFIX, TOKEN_HEADER, TOKEN_PATH, TOKEN_TTL_HEADER, formatImdsTime } from '../imds/protocol.js';
import { parseCredentialsDocument } from '../imds/credentials.js';
import { httpRequest, type UpstreamResponse } from '../upstream/httpRequest.js';
import { isUpstreamError, type UpstreamError } from '../upstream/errors.js';
import { firstLine, UsageError } from '../config/usageError.js';
import { parseFlags } from '../config/flags.js';

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
  const values = parseFlags(argv, { endpoint: { type: 'string' }, 'timeout-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    process.stdout.write(CREDENTIAL_PROCESS_HELP);
    return 0;
  }
  const endpoint = (values.endpoint ?? `http://${DEFAULT_LISTEN}`).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+$/.test(endpoint)) throw new UsageError(`--endpoint: expected http://HOST:PORT, got "${values.endpoint}"`);
  const rawTimeout = values['timeout-ms'] ?? '2000';
  if (!/^\d+$/.test(rawTimeout) || Number(rawTimeout) < 1) throw new UsageError(`--timeout-ms: expected a whole number of milliseconds, got "${rawTimeout}"`);
  const timeoutMs = Number(rawTimeout);

  // One connection for the three requests, closed at the end so the process exits at once
  // (https, rare here, keeps node's own agent, whose idle sockets do not hold the process).
  const agent = endpoint.startsWith('http:') ? new Agent({ keepAlive: true, maxSockets: 1 }) : undefined;
  const call = async (method: 'GET' | 'PUT', path: string, headers: Record<string, string>): Promise<string> => {
    const what = `${method} ${path}`;
    let answer: UpstreamResponse;
    try {
      answer = await httpRequest({ method, url: `${endpoint}${path}`, headers, timeoutMs, maxBodyBytes: MAX_BODY_BYTES, agent });
    } catch (error) {
      throw new Error(isUpstreamError(error) ? failureText(endpoint, what, timeoutMs, error) : firstLine(error));
    }
    if (answer.status !== 200) throw new Error(`${endpoint} answered ${what} with ${answer.status}${STATUS_HINTS[answer.status] ?? ''}`);
    return answer.body;
  };
  try {
    const token = await call('PUT', TOKEN_PATH, { [TOKEN_TTL_HEADER]: '300' });
    const roles = await call('GET', `${CREDENTIALS_PREFIX}/`, { [TOKEN_HEADER]: token });
    const role = roles.split('\n')[0]?.trim();
    if (!role) throw new Error(`the proxy at ${endpoint} lists no instance profile role: does the instance have one attached?`);
    const body = await call('GET', `${CREDENTIALS_PREFIX}/${encodeURIComponent(role)}`, { [TOKEN_HEADER]: token });
    const parsed = parseCredentialsDocument(body);
    if (parsed.kind !== 'credentials') {
      const what = parsed.kind === 'error-document' ? `an error document (Code ${parsed.code})` : `an invalid credentials document (${parsed.reason})`;
      throw new Error(`${endpoint} answered ${what} for role "${role}": is that the proxy?`);
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
    process.stderr.write(`imds-cache-proxy credential-process: ${firstLine(error)}\n`);
    return 1;
  } finally {
    agent?.destroy();
  }
}

/** Larger than any IMDS answer; a wrong endpoint streaming something big is cut off here. */
const MAX_BODY_BYTES = 64 * 1024;

const STATUS_HINTS: Record<number, string> = {
  401: ': the proxy refused the token it had just issued; is another server answering on that port?',
  403: ": the proxy refused this client; does serve's --allow-cidr admit it?",
  404: ': no such path there; is that the proxy, and does the instance have a role attached?',
  503: ': the proxy has no credentials to serve yet; can it reach IMDS? (its log, or /readyz)',
};

/** What a failed exchange means, in the words an operator acts on. Never quotes a body. */
function failureText(endpoint: string, what: string, timeoutMs: number, error: UpstreamError): string {
  if (error.kind === 'timeout') {
    return `no answer from ${endpoint} within ${timeoutMs} ms (${what}): something accepts connections there but does not answer; is it the proxy? (--timeout-ms to wait longer)`;
  }
  if (error.kind === 'invalid_response') return `${endpoint} answered ${what}: ${error.message}; is that the proxy?`;
  const code = (error.cause as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return `connection refused at ${endpoint}: is "imds-cache-proxy serve" running, and does --endpoint name its --listen address and port?`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve "${new URL(endpoint).hostname}" (--endpoint ${endpoint}): give the proxy's address, e.g. http://${DEFAULT_LISTEN}`;
    case 'ECONNRESET':
      return `connection to ${endpoint} closed before a whole answer (${what}): is that port the proxy's? A proxy at its --max-connections closes new ones`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return `cannot reach ${endpoint} (${code}): check --endpoint; the proxy listens on this host, by default ${DEFAULT_LISTEN}`;
    default:
      return `${what} at ${endpoint} failed: ${error.message}`;
  }
}
