import { parseServeConfig, SERVE_OPTIONS } from '../config/proxyConfig.js';
import { createLogger } from '../runtime/log.js';
import { takeInheritedListeners } from '../server/inheritedListeners.js';
import { startProxy } from '../server/proxy.js';

export const SERVE_HELP = `Usage: imds-cache-proxy serve [options]

Serve IMDSv2 to local SDKs from a cache of the instance role's credentials.
Every option can also be set by its environment variable; a flag wins.

${Object.entries(SERVE_OPTIONS)
  .map(([name, o]) => `  --${`${name} ${o.value}`.padEnd(46)} ${o.help}\n  ${''.padEnd(48)} [${o.env}]`)
  .join('\n')}

Point SDKs at it with AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:8169/
`;

/** `imds-cache-proxy serve`: runs until SIGTERM or SIGINT, then drains and exits 0. */
export async function runServeCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(SERVE_HELP);
    return 0;
  }
  const config = parseServeConfig(argv, env);
  // Sockets systemd passed (imds-cache-proxy.socket); none: bind --listen as usual.
  const inherited = takeInheritedListeners(env, process.pid);
  const logger = createLogger(config.logLevel);
  // Listen for signals before the proxy starts: one sent as soon as it logs "started" counts.
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  const proxy = await startProxy(config, { logger, inherited });
  const signal = await stopSignal;
  logger.info({ event: 'stopping', signal }, 'draining requests in flight');
  await proxy.close();
  return 0;
}
