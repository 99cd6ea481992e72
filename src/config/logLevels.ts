/**
 * The log levels, apart from log.ts so that parsing `--log-level` (config.ts) does not load
 * pino: commands that never log, like credential-process, start without it.
 */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
