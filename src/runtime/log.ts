import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from '../config/logLevels.js';

export type { Logger } from 'pino';
export { LOG_LEVELS, type LogLevel } from '../config/logLevels.js';

/**
 * JSON lines on stdout (or `destination`). Secrets stay out by construction: the code logs
 * credentials only through `describeCredentials`, which names no secret; the redaction list
 * is a second line of defence should a credentials object ever reach a log call.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'imds-cache-proxy' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: [
          'SecretAccessKey',
          'Token',
          'secretAccessKey',
          'token',
          '*.SecretAccessKey',
          '*.Token',
          '*.secretAccessKey',
          '*.token',
          'headers["x-aws-ec2-metadata-token"]',
          'req.headers["x-aws-ec2-metadata-token"]',
          'req.headers.authorization',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
}

/** The last 4 characters of an AccessKeyId: enough to tell credentials apart, nothing to use. */
export function accessKeyIdSuffix(accessKeyId: string): string {
  return accessKeyId.slice(-4);
}

/** What may be said about credentials in a log line: the key id's tail and the expiry. */
export function describeCredentials(c: { accessKeyId: string; expiration: number }): {
  accessKeyIdSuffix: string;
  expiration: string;
} {
  return { accessKeyIdSuffix: accessKeyIdSuffix(c.accessKeyId), expiration: new Date(c.expiration).toISOString() };
}

export const silentLogger: Logger = pino({ level: 'silent' });
