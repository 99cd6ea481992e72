/**
 * A bad flag, value or environment variable. The CLI prints `message` as one line and
 * exits 2; nothing else about it is printed.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
