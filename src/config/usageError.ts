/**
 * A bad flag, value or environment variable. The CLI prints `message` as one line and
 * exits 2; nothing else about it is printed.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** An error's message up to its first line: what the CLI prints for it. */
export function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split('\n')[0] ?? 'invalid arguments';
}
